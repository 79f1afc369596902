package replication

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
)

func sampleFrames() []frame {
	sum := [32]byte{1, 2, 3}
	return []frame{
		{typ: frameIndex, entries: []indexEntry{{Path: "a/b", Size: 10, Mtime: -5, Sum: sum}, {Path: "c", Size: 0, Mtime: 1 << 40}}},
		{typ: frameIndex, entries: []indexEntry{}},
		{typ: frameIndexEnd, size: 2, pos: 300},
		{typ: frameChunk, path: "a/b", offset: 4, data: []byte("hello")},
		{typ: frameChunk, path: "a/b", data: []byte{}},
		{typ: frameFileEnd, path: "a/b", size: 9, sum: sum},
		{typ: frameFileGone, path: "gone"},
		{typ: frameSyncDone, pos: 300},
		{typ: frameAppend, path: "log/0001.seg", offset: 1 << 33, pos: 400, data: []byte("tail")},
		{typ: frameReplace, path: "conf.json", pos: 500, data: []byte(`{"a":1}`)},
		{typ: frameDelete, path: "x", pos: 516},
		{typ: framePosition, pos: 516},
		{typ: frameWant, path: "a/b", offset: 4, sum: sum},
		{typ: frameWantDone},
		{typ: frameAck, pos: 516},
	}
}

// normal makes nil and empty slices compare equal.
func normal(f frame) frame {
	if len(f.data) == 0 {
		f.data = nil
	}
	if len(f.entries) == 0 {
		f.entries = nil
	}
	return f
}

func TestFrame_RoundTrip(t *testing.T) {
	var stream []byte
	for _, f := range sampleFrames() {
		var err error
		if stream, err = appendFrame(stream, f); err != nil {
			t.Fatalf("encode %#x: %v", f.typ, err)
		}
	}
	br := bufio.NewReader(bytes.NewReader(stream))
	for _, want := range sampleFrames() {
		got, err := readFrame(br)
		if err != nil {
			t.Fatalf("decode %#x: %v", want.typ, err)
		}
		if !reflect.DeepEqual(normal(got), normal(want)) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, err := readFrame(br); err != io.EOF {
		t.Fatalf("at the end: got %v, want io.EOF", err)
	}
}

func TestFrame_Refused(t *testing.T) {
	good, _ := appendFrame(nil, frame{typ: frameAppend, path: "a", offset: 0, pos: 1, data: []byte("xyz")})
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-6] ^= 0x40 // a data byte: the CRC no longer matches
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	traversal, _ := appendFrame(nil, frame{typ: frameAppend, path: "../etc/passwd", pos: 1, data: []byte("x")})
	absolute, _ := appendFrame(nil, frame{typ: frameReplace, path: "/etc/passwd", pos: 1})
	reserved, _ := appendFrame(nil, frame{typ: frameDelete, path: reservedDir + "/tmp/x", pos: 1})
	nul, _ := appendFrame(nil, frame{typ: frameDelete, path: "a\x00b", pos: 1})
	huge := binary.BigEndian.AppendUint32(nil, maxFrameBody+1)
	zero := binary.BigEndian.AppendUint32(nil, 0)
	unknown := withCRC([]byte{0x7f})
	trailing := withCRC(append([]byte{frameAck}, 1, 2))
	tests := []struct {
		name string
		in   []byte
	}{
		{"truncated length", good[:2]},
		{"truncated body", good[:len(good)-3]},
		{"corrupt data", corrupt},
		{"corrupt checksum", badCRC},
		{"path traversal", traversal},
		{"absolute path", absolute},
		{"reserved directory", reserved},
		{"NUL in path", nul},
		{"length too large", huge},
		{"zero length", zero},
		{"unknown type", unknown},
		{"trailing bytes", trailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readFrame(bufio.NewReader(bytes.NewReader(tt.in)))
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("got %v, want ErrBadFrame", err)
			}
		})
	}
}

// withCRC frames body (type and payload) with its length and CRC.
func withCRC(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32c(body))
}

func TestHeader_Check(t *testing.T) {
	if err := checkHeader(appendHeader(nil)); err != nil {
		t.Fatalf("own header: %v", err)
	}
	v1 := append([]byte(headerMagic), 0, 0, 0, 1) // a replace without its sum
	v3 := append([]byte(headerMagic), 0, 0, 0, 3)
	for _, h := range [][]byte{[]byte("GET / HTTP/1"), v1, v3, []byte(strings.Repeat("\x00", headerLen))} {
		if err := checkHeader(h); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("header %q: got %v, want ErrBadHeader", h, err)
		}
	}
}

func TestValidPath(t *testing.T) {
	good := []string{"a", "a/b/c.json", "seg/0001.seg", "é/ü", ".hidden", "a..b", "..a"}
	bad := []string{"", "/a", "a/", "a//b", "./a", "a/./b", "..", "../a", "a/../b", "a/..", "a\x00b", "a\nb", "a\\b",
		reservedDir, reservedDir + "/tmp/x", strings.Repeat("x", maxPathLen+1), "\xff"}
	for _, p := range good {
		if !validPath(p) {
			t.Errorf("validPath(%q) = false, want true", p)
		}
	}
	for _, p := range bad {
		if validPath(p) {
			t.Errorf("validPath(%q) = true, want false", p)
		}
	}
}

func TestFrame_Compressed(t *testing.T) {
	data := bytes.Repeat([]byte("segment data "), 1000)
	plain, _ := appendFrame(nil, frame{typ: frameAppend, path: "s", offset: 7, pos: 99, data: data})
	c := compressFrame(plain, new(lz4.Compressor))
	if len(c) >= len(plain) || c[4]&compressedBit == 0 {
		t.Fatalf("compressed %d bytes to %d", len(plain), len(c))
	}
	got, err := readFrame(bufio.NewReader(bytes.NewReader(c)))
	if err != nil || got.typ != frameAppend || !bytes.Equal(got.data, data) || got.offset != 7 || got.pos != 99 {
		t.Fatalf("got %+v, %v", got.typ, err)
	}
	// A short frame stays plain.
	small, _ := appendFrame(nil, frame{typ: frameAppend, path: "s", pos: 1, data: []byte("short")})
	if out := compressFrame(small, new(lz4.Compressor)); !bytes.Equal(out, small) {
		t.Fatalf("a short frame was compressed")
	}
	// A compressed frame that lies about its length is refused.
	bad := bytes.Clone(c)
	bad[5]++
	bad = withCRC(bad[4 : len(bad)-4])
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(bad))); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("lying length: got %v, want ErrBadFrame", err)
	}
}
