package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"shoal/internal/wire"
)

func TestDecoder_RoundTrip(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = wire.AppendBool(b, true)
	b = wire.AppendBool(b, false)
	b = wire.AppendUvarint(b, 0)
	b = wire.AppendUvarint(b, math.MaxUint64)
	b = wire.AppendVarint(b, math.MinInt64)
	b = wire.AppendVarint(b, -1)
	b = wire.AppendUint64LE(b, 0x0102030405060708)
	b = wire.AppendBytes(b, "name")
	b = wire.AppendBytes(b, []byte{})
	b = wire.AppendBytes(b, []byte{0, 1, 2})
	b = wire.AppendUvarint(b, 2) // a count of two 1-byte elements
	b = append(b, "xy"...)
	b = append(b, "MAGIC"...)

	d := wire.NewDecoder(b)
	if got := d.Byte("byte"); got != 7 {
		t.Fatalf("byte: got %d, want 7", got)
	}
	if !d.Bool("true") || d.Bool("false") {
		t.Fatal("bools did not round trip")
	}
	if got := d.Uvarint("zero"); got != 0 {
		t.Fatalf("uvarint: got %d, want 0", got)
	}
	if got := d.Uvarint("max"); got != math.MaxUint64 {
		t.Fatalf("uvarint: got %d, want max", got)
	}
	if got := d.Varint("min"); got != math.MinInt64 {
		t.Fatalf("varint: got %d, want min", got)
	}
	if got := d.Varint("minus one"); got != -1 {
		t.Fatalf("varint: got %d, want -1", got)
	}
	if got := d.Uint64LE("hash"); got != 0x0102030405060708 {
		t.Fatalf("uint64: got %#x", got)
	}
	if got := d.String("name", 4); got != "name" {
		t.Fatalf("string: got %q, want name", got)
	}
	if got := d.Bytes("empty", 0); got == nil || len(got) != 0 {
		t.Fatalf("empty bytes: got %#v, want an empty non-nil slice", got)
	}
	if got := d.Bytes("bytes", 3); !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("bytes: got %x", got)
	}
	if n := d.Count("count", 1); n != 2 || string(d.Raw("items", n)) != "xy" {
		t.Fatalf("count: got %d", n)
	}
	if d.Len() != 5 || string(d.Rest()) != "MAGIC" || d.Len() != 5 {
		t.Fatalf("rest: %d bytes %q", d.Len(), d.Rest())
	}
	if got := d.Raw("magic", 5); string(got) != "MAGIC" {
		t.Fatalf("raw: got %q", got)
	}
	if err := d.End(); err != nil {
		t.Fatalf("end: %v", err)
	}
}

// The encoding is pinned: these bytes are what encoding/binary writes, and
// every format built on this package depends on them.
func TestAppend_FormatIsPinned(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"uvarint 0", wire.AppendUvarint(nil, 0), []byte{0}},
		{"uvarint 300", wire.AppendUvarint(nil, 300), []byte{0xac, 0x02}},
		{"uvarint max", wire.AppendUvarint(nil, math.MaxUint64), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"varint -1", wire.AppendVarint(nil, -1), []byte{0x01}},
		{"varint 1", wire.AppendVarint(nil, 1), []byte{0x02}},
		{"varint -65", wire.AppendVarint(nil, -65), []byte{0x81, 0x01}},
		{"uint64", wire.AppendUint64LE(nil, 0x0102030405060708), []byte{8, 7, 6, 5, 4, 3, 2, 1}},
		{"bool", wire.AppendBool(wire.AppendBool(nil, true), false), []byte{1, 0}},
		{"string", wire.AppendBytes([]byte{9}, "ab"), []byte{9, 2, 'a', 'b'}},
		{"bytes", wire.AppendBytes(nil, []byte(nil)), []byte{0}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %x, want %x", tt.name, tt.got, tt.want)
		}
	}
}

func TestDecoder_FailuresNameTheField(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		read  func(d *wire.Decoder)
		field string
	}{
		{"no byte", nil, func(d *wire.Decoder) { d.Byte("kind") }, "kind"},
		{"bad flag", []byte{2}, func(d *wire.Decoder) { d.Bool("deleted") }, "deleted"},
		{"truncated uvarint", []byte{0x80}, func(d *wire.Decoder) { d.Uvarint("limit") }, "limit"},
		{"empty uvarint", nil, func(d *wire.Decoder) { d.Uvarint("limit") }, "limit"},
		{"overflowing uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, func(d *wire.Decoder) { d.Uvarint("token") }, "token"},
		{"eleven-byte uvarint", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, func(d *wire.Decoder) { d.Uvarint("token") }, "token"},
		{"non-minimal zero", []byte{0x80, 0x00}, func(d *wire.Decoder) { d.Uvarint("count") }, "count"},
		{"non-minimal one", []byte{0x81, 0x80, 0x00}, func(d *wire.Decoder) { d.Uvarint("count") }, "count"},
		{"non-minimal varint", []byte{0x82, 0x00}, func(d *wire.Decoder) { d.Varint("time") }, "time"},
		{"short uint64", []byte{1, 2, 3}, func(d *wire.Decoder) { d.Uint64LE("hash") }, "hash"},
		{"short raw", []byte("SL"), func(d *wire.Decoder) { d.Raw("magic", 4) }, "magic"},
		{"negative raw", []byte("SL"), func(d *wire.Decoder) { d.Raw("magic", -1) }, "magic"},
		{"bad length", []byte{0x80}, func(d *wire.Decoder) { d.Bytes("data", 10) }, "data"},
		{"non-minimal length", []byte{0x81, 0x00, 'x'}, func(d *wire.Decoder) { d.String("name", 10) }, "name"},
		{"over the limit", []byte{3, 'a', 'b', 'c'}, func(d *wire.Decoder) { d.String("name", 2) }, "name"},
		{"negative limit", []byte{1, 'a'}, func(d *wire.Decoder) { d.Bytes("name", -1) }, "name"},
		{"past the end", []byte{3, 'a'}, func(d *wire.Decoder) { d.Bytes("data", 10) }, "data"},
		{"count too large", []byte{3, 0, 0, 0, 0, 0}, func(d *wire.Decoder) { d.Count("entries", 2) }, "entries"},
		{"trailing bytes", []byte{1, 2}, func(d *wire.Decoder) { d.Byte("kind") }, "end"},
		{"caller's check", []byte{5}, func(d *wire.Decoder) {
			if v := d.Byte("mode"); v > 2 {
				d.Failf("mode", "unknown mode %d", v)
			}
		}, "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := wire.NewDecoder(tt.in)
			tt.read(d)
			err := d.End()
			var fe *wire.FieldError
			if !errors.Is(err, wire.ErrMalformed) || !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("got %v, want a *FieldError of %q wrapping ErrMalformed", err, tt.field)
			}
			if d.Len() != 0 || d.Rest() != nil {
				t.Fatalf("after a failure: %d bytes left", d.Len())
			}
		})
	}
}

func TestDecoder_FirstErrorSticks(t *testing.T) {
	d := wire.NewDecoder([]byte{0x80, 0x00, 1, 2, 3})
	if d.Uvarint("first") != 0 {
		t.Fatal("a failed read returned a value")
	}
	first := d.Err()
	if d.Byte("b") != 0 || d.Bool("f") || d.Uvarint("u") != 0 || d.Varint("v") != 0 || d.Uint64LE("h") != 0 ||
		d.Raw("r", 0) != nil || d.Bytes("s", 9) != nil || d.String("s", 9) != "" || d.Count("c", 1) != 0 {
		t.Fatal("a read after a failure returned a value")
	}
	d.Failf("later", "ignored")
	if d.Err() != first || d.End() != first {
		t.Fatalf("error changed from %v to %v", first, d.Err())
	}
	var fe *wire.FieldError
	if !errors.As(first, &fe) || fe.Field != "first" || first.Error() != "first: non-minimal varint" {
		t.Fatalf("first error: %v", first)
	}
}

// The Decoder accepts exactly what encoding/binary writes, and refuses the
// non-minimal forms that binary.Uvarint accepts.
func TestDecoder_RefusesOnlyNonMinimalVarints(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 255, 300, 1 << 14, 1<<21 - 1, 1 << 35, 1<<63 + 5, math.MaxUint64} {
		min := binary.AppendUvarint(nil, x)
		if got := wire.NewDecoder(min).Uvarint("x"); got != x {
			t.Fatalf("minimal %x: got %d, want %d", min, got, x)
		}
		// Pad with a continuation byte: binary.Uvarint still reads x.
		if len(min) < binary.MaxVarintLen64 {
			padded := append(append([]byte(nil), min...), 0)
			padded[len(min)-1] |= 0x80
			if v, n := binary.Uvarint(padded); n != len(padded) || v != x {
				t.Fatalf("test bug: %x is not a padded %d", padded, x)
			}
			d := wire.NewDecoder(padded)
			if d.Uvarint("x"); !errors.Is(d.Err(), wire.ErrMalformed) {
				t.Fatalf("padded %x: got %v, want ErrMalformed", padded, d.Err())
			}
		}
	}
}

func TestDecoder_BytesAliasAndStringsCopy(t *testing.T) {
	in := wire.AppendBytes(wire.AppendBytes(nil, "ab"), "cd")
	d := wire.NewDecoder(in)
	b := d.Bytes("b", 2)
	s := d.String("s", 2)
	in[1] = 'X' // the first run's first byte
	in[4] = 'Y' // the second run's first byte
	if string(b) != "Xb" {
		t.Fatalf("bytes: got %q, want the aliased %q", b, "Xb")
	}
	if s != "cd" {
		t.Fatalf("string: got %q, want the copy %q", s, "cd")
	}
	if cap(b) != len(b) {
		t.Fatalf("bytes: capacity %d past length %d", cap(b), len(b))
	}
	_ = append(b, '!') // must copy, not overwrite the input
	if in[3] != 2 {
		t.Fatalf("appending to decoded bytes overwrote the input: %q", in)
	}
}

func TestDecoder_Header(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the failing field, "" for none
	}{
		{"SNAP\x02", ""},
		{"SNAX\x02", "magic"},
		{"SNAP\x03", "version"},
		{"SN", "magic"},
	} {
		d := wire.NewDecoder([]byte(tc.in))
		d.Header("SNAP", 2)
		var fe *wire.FieldError
		switch err := d.Err(); {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (!errors.As(err, &fe) || fe.Field != tc.want):
			t.Errorf("%q: got %v, want a failure of %s", tc.in, err, tc.want)
		}
	}
}
