package wire_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shoal/internal/wire"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain
// go test. Regenerate them with:
//
//	go test ./internal/wire -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// Reads FuzzDecoder's script can make, one per script byte (the byte
// modulo readKinds); the byte divided by readKinds is the limit or size.
const (
	readByte = iota
	readBool
	readUvarint
	readVarint
	readUint64
	readRaw
	readBytes
	readString
	readCount
	readKinds
)

// FuzzDecoder runs a script of reads over data and checks the Decoder's
// contract: it never panics; every failure is a *FieldError wrapping
// ErrMalformed, sticks, and ends all reading; and what it accepts is
// canonical: appending what was read gives back exactly the bytes read
// (and the Append helpers write what encoding/binary writes, so the
// values are those binary.Uvarint and binary.Varint read).
func FuzzDecoder(f *testing.F) {
	for _, s := range decoderSeeds() {
		f.Add(s.script, s.data)
	}
	f.Fuzz(func(t *testing.T, script, data []byte) {
		input := bytes.Clone(data)
		d := wire.NewDecoder(data)
		var again []byte // the encoding of what was read
		for i, op := range script {
			size := int(op / readKinds)
			switch op % readKinds {
			case readByte:
				again = append(again, d.Byte("byte"))
			case readBool:
				again = wire.AppendBool(again, d.Bool("bool"))
			case readUvarint:
				again = wire.AppendUvarint(again, d.Uvarint("uvarint"))
			case readVarint:
				again = wire.AppendVarint(again, d.Varint("varint"))
			case readUint64:
				again = wire.AppendUint64LE(again, d.Uint64LE("uint64"))
			case readRaw:
				b := d.Raw("raw", size)
				if d.Err() == nil && (len(b) != size || cap(b) != size) {
					t.Fatalf("raw of %d: got len %d cap %d", size, len(b), cap(b))
				}
				again = append(again, b...)
			case readBytes:
				b := d.Bytes("bytes", size)
				if d.Err() == nil && (len(b) > size || cap(b) != len(b)) {
					t.Fatalf("bytes of at most %d: got len %d cap %d", size, len(b), cap(b))
				}
				again = wire.AppendBytes(again, b)
			case readString:
				s := d.String("string", size)
				if len(s) > size {
					t.Fatalf("string of at most %d: got %d bytes", size, len(s))
				}
				again = wire.AppendBytes(again, s)
			case readCount:
				n := d.Count("count", size)
				if d.Err() == nil && n*max(size, 1) > d.Len() {
					t.Fatalf("count %d of %d-byte elements in %d bytes", n, size, d.Len())
				}
				again = wire.AppendUvarint(again, uint64(n))
			}
			if err := d.Err(); err != nil {
				checkFailed(t, d, err)
				if d.Len() != 0 {
					t.Fatalf("read %d: %d bytes left after a failure", i, d.Len())
				}
				return
			}
			if read := len(data) - d.Len(); !bytes.Equal(again, data[:read]) {
				t.Fatalf("read %d: the %d bytes read re-encode as %x, not %x", i, read, again, data[:read])
			}
		}
		rest := d.Len()
		if err := d.End(); (err == nil) != (rest == 0) {
			t.Fatalf("end with %d bytes left: %v", rest, err)
		} else if err != nil {
			checkFailed(t, d, err)
		}
		if !bytes.Equal(data, input) {
			t.Fatal("the decoder changed its input")
		}
	})
}

// checkFailed checks a failure and that it sticks.
func checkFailed(t *testing.T, d *wire.Decoder, err error) {
	t.Helper()
	var fe *wire.FieldError
	if !errors.Is(err, wire.ErrMalformed) || !errors.As(err, &fe) || fe.Field == "" || fe.Reason == "" {
		t.Fatalf("error %v is not a *FieldError wrapping ErrMalformed", err)
	}
	if d.Byte("b") != 0 || d.Uvarint("u") != 0 || d.Bytes("s", 1<<20) != nil || d.Err() != err || d.End() != err {
		t.Fatalf("a read after the failure %v did something", err)
	}
}

type decoderSeed struct {
	script []byte
	data   []byte
}

// op returns the script byte of a read of kind with a limit or size.
func op(kind, size int) byte { return byte(size*readKinds + kind) }

func decoderSeeds() []decoderSeed {
	var all []byte
	all = append(all, 7)
	all = wire.AppendBool(all, true)
	all = wire.AppendUvarint(all, 300)
	all = wire.AppendVarint(all, -65)
	all = wire.AppendUint64LE(all, 1<<63+1)
	all = append(all, "SLCK"...)
	all = wire.AppendBytes(all, []byte{0, 1})
	all = wire.AppendBytes(all, "name")
	all = wire.AppendUvarint(all, 2)
	allScript := []byte{op(readByte, 0), op(readBool, 0), op(readUvarint, 0), op(readVarint, 0), op(readUint64, 0),
		op(readRaw, 4), op(readBytes, 2), op(readString, 10), op(readCount, 0)}
	return []decoderSeed{
		{allScript, append(bytes.Clone(all), 0, 0)},
		{allScript, all[:len(all)-3]},
		{[]byte{op(readUvarint, 0)}, []byte{0x80, 0x00}},
		{[]byte{op(readVarint, 0)}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{[]byte{op(readUvarint, 0)}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{[]byte{op(readBool, 0)}, []byte{2}},
		{[]byte{op(readString, 2)}, []byte{3, 'a', 'b', 'c'}},
		{[]byte{op(readBytes, 20)}, []byte{0x81, 0x00, 'x'}},
		{[]byte{op(readCount, 2), op(readRaw, 2)}, []byte{3, 0, 0, 0, 0, 0}},
		{[]byte{op(readByte, 0)}, []byte{1, 2}},
		{nil, nil},
	}
}

// TestFuzzSeeds writes the seed corpora when run with -update-fuzz-seeds.
func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecoder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range decoderSeeds() {
		body := "go test fuzz v1\n" + strings.Join([]string{fmt.Sprintf("[]byte(%q)", s.script), fmt.Sprintf("[]byte(%q)", s.data)}, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
