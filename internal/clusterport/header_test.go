package clusterport

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHeader_RoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Kind: KindRaft, From: "node1", To: "node2"},
		{Kind: Kind(200), From: "a@b", To: strings.Repeat("é", MaxNameLen/2)},
	} {
		buf, err := AppendHeader(nil, h)
		if err != nil {
			t.Fatalf("encode %+v: %v", h, err)
		}
		// The reader must consume the header and nothing after it.
		r := bytes.NewReader(append(buf, "rest"...))
		got, err := ReadHeader(r)
		if err != nil {
			t.Fatalf("decode %+v: %v", h, err)
		}
		if got != h {
			t.Fatalf("got %+v, want %+v", got, h)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "rest" {
			t.Fatalf("left %q after the header, want %q", rest, "rest")
		}
	}
}

func TestHeader_EncodeRefusesBadNames(t *testing.T) {
	for _, h := range []Header{
		{Kind: KindRaft, From: "", To: "b"},
		{Kind: KindRaft, From: "a", To: strings.Repeat("x", MaxNameLen+1)},
		{Kind: KindRaft, From: "a\xff", To: "b"},
	} {
		if _, err := AppendHeader(nil, h); err == nil {
			t.Errorf("encoded %q -> %q", h.From, h.To)
		}
	}
}

func TestHeader_DecodeRefusesBadInput(t *testing.T) {
	good, _ := AppendHeader(nil, Header{Kind: KindRaft, From: "a", To: "b"})
	cases := map[string][]byte{
		"empty":            nil,
		"raw raft rpc":     {0, 0x85, 0xa1},
		"wrong magic":      append([]byte("http"), good[4:]...),
		"future version":   append(append([]byte(magic), 9), good[5:]...),
		"truncated":        good[:len(good)-1],
		"empty sender":     append([]byte(magic), version, byte(KindRaft), 0),
		"sender not utf-8": append([]byte(magic), version, byte(KindRaft), 1, 0xff, 1, 'b'),
	}
	for name, in := range cases {
		if _, err := ReadHeader(bytes.NewReader(in)); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: got %v, want ErrBadHeader", name, err)
		}
	}
}

func headerSeeds() [][]byte {
	good, _ := AppendHeader(nil, Header{Kind: KindRaft, From: "node1", To: "node2"})
	return [][]byte{
		good,
		good[:7],
		append([]byte(magic), version, byte(KindRaft), 255),
		append([]byte(magic), 0, 0, 0, 0),
		{0, 1, 2, 3, 4, 5, 6, 7},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	}
}

// FuzzReadHeader checks that ReadHeader never panics, fails only with
// ErrBadHeader, never reads past the header, and that what it accepts
// encodes back to the same bytes.
func FuzzReadHeader(f *testing.F) {
	for _, s := range headerSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := ReadHeader(r)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		consumed := len(in) - r.Len()
		again, err := AppendHeader(nil, h)
		if err != nil {
			t.Fatalf("accepted %+v, which does not encode: %v", h, err)
		}
		if !bytes.Equal(again, in[:consumed]) {
			t.Fatalf("accepted %q as %+v, which encodes as %q", in[:consumed], h, again)
		}
	})
}
