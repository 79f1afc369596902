package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error a Decoder reports: the input is
// not a valid encoding (truncated, a bad or non-minimal varint, a length
// over its limit, trailing bytes, or a value its caller refused).
var ErrMalformed = errors.New("malformed encoding")

// FieldError says which field of an encoding could not be decoded and why.
// It wraps ErrMalformed.
type FieldError struct {
	// Field is the caller's name for what was being read, such as "name"
	// or "entry count"; "end" for trailing bytes.
	Field string
	// Reason says what was wrong with it.
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns ErrMalformed.
func (e *FieldError) Unwrap() error { return ErrMalformed }

// AppendUvarint appends x as a minimal unsigned varint (as
// binary.AppendUvarint does).
func AppendUvarint(b []byte, x uint64) []byte { return binary.AppendUvarint(b, x) }

// AppendVarint appends x as a minimal zig-zag signed varint (as
// binary.AppendVarint does).
func AppendVarint(b []byte, x int64) []byte { return binary.AppendVarint(b, x) }

// AppendUint64LE appends x as 8 bytes, little-endian.
func AppendUint64LE(b []byte, x uint64) []byte { return binary.LittleEndian.AppendUint64(b, x) }

// AppendBool appends a flag byte: 1 for true, 0 for false.
func AppendBool(b []byte, x bool) []byte {
	if x {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendBytes appends s, a string or a byte slice, prefixed by its length
// as an unsigned varint.
func AppendBytes[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// A Decoder reads an encoding from a byte slice, front to back. The first
// failure sticks: Err returns it, and every later read returns a zero
// value and reads nothing, so a caller may read a whole message and check
// Err (or End) once. A Decoder never panics; it allocates only the strings
// String returns (copies of bytes it read) and the error of a failure. It
// is not safe for concurrent use.
type Decoder struct {
	buf []byte // the unread input; nil after a failure
	err error
}

// NewDecoder returns a Decoder reading b. b must not change while the
// Decoder, or any slice it returned, is in use.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Err returns the first failure, a *FieldError, or nil.
func (d *Decoder) Err() error { return d.err }

// Failf records that field is malformed, for the checks a caller makes on
// what it read (a value out of range, an unknown kind), unless a failure
// is already recorded. Later reads return zero values.
func (d *Decoder) Failf(field, format string, args ...any) {
	if d.err == nil {
		d.err = &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
		d.buf = nil
	}
}

// Len returns the number of unread bytes; 0 after a failure.
func (d *Decoder) Len() int { return len(d.buf) }

// Rest returns the unread bytes without consuming them; nil after a
// failure. The result aliases the input.
func (d *Decoder) Rest() []byte { return d.buf }

// End records a failure if bytes are left unread, and returns Err.
func (d *Decoder) End() error {
	if d.err == nil && len(d.buf) > 0 {
		d.Failf("end", "%d trailing bytes", len(d.buf))
	}
	return d.err
}

// Byte reads one byte.
func (d *Decoder) Byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.Failf(field, "truncated")
		return 0
	}
	x := d.buf[0]
	d.buf = d.buf[1:]
	return x
}

// Bool reads a flag byte written by AppendBool: 0 or 1, anything else
// fails.
func (d *Decoder) Bool(field string) bool {
	switch x := d.Byte(field); x {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Failf(field, "flag byte %d, want 0 or 1", x)
		return false
	}
}

// Uvarint reads an unsigned varint. A truncated varint, one over 64 bits,
// and one not in its minimal form (padded with continuation bytes that
// add nothing, which AppendUvarint never writes) fail.
func (d *Decoder) Uvarint(field string) uint64 {
	x, reason := d.uvarint()
	if reason != "" {
		d.Failf(field, "%s", reason)
	}
	return x
}

// Varint reads a zig-zag signed varint, with the rules of Uvarint.
func (d *Decoder) Varint(field string) int64 {
	ux := d.Uvarint(field)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// uvarint reads an unsigned varint and returns why it failed, or "".
func (d *Decoder) uvarint() (uint64, string) {
	if d.err != nil {
		return 0, ""
	}
	x, n := binary.Uvarint(d.buf)
	switch {
	case n == 0:
		return 0, "truncated varint"
	case n < 0:
		return 0, "varint overflows 64 bits"
	case n > 1 && d.buf[n-1] == 0:
		return 0, "non-minimal varint"
	}
	d.buf = d.buf[n:]
	return x, ""
}

// Uint64LE reads 8 bytes as a little-endian integer.
func (d *Decoder) Uint64LE(field string) uint64 {
	b := d.Raw(field, 8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// Header reads a format's magic and version byte and records a failure
// unless they are magic and version (the head of a module's snapshot).
func (d *Decoder) Header(magic string, version byte) {
	if m := d.Raw("magic", len(magic)); d.err == nil && string(m) != magic {
		d.Failf("magic", "bad magic %q", m)
	}
	if v := d.Byte("version"); d.err == nil && v != version {
		d.Failf("version", "unsupported version %d", v)
	}
}

// Raw reads exactly n bytes, without a length prefix. The result aliases
// the input (its capacity ends at its length, so appending to it copies);
// a caller that keeps it after the input may change must copy it.
func (d *Decoder) Raw(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf) {
		d.Failf(field, "truncated: %d bytes wanted, %d left", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// Bytes reads a byte run written by AppendBytes, of at most limit bytes. The
// result aliases the input (its capacity ends at its length, so appending
// to it copies); a caller that keeps it after the input may change must
// copy it.
func (d *Decoder) Bytes(field string, limit int) []byte {
	n, reason := d.uvarint()
	switch {
	case d.err != nil:
		return nil
	case reason != "":
		d.Failf(field, "length: %s", reason)
		return nil
	case n > uint64(max(limit, 0)):
		d.Failf(field, "length %d over the limit of %d", n, limit)
		return nil
	case n > uint64(len(d.buf)):
		d.Failf(field, "length %d past the end (%d bytes left)", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// String reads a string written by AppendBytes, of at most limit bytes.
// The string is a copy: it never aliases the input.
func (d *Decoder) String(field string, limit int) string {
	return string(d.Bytes(field, limit))
}

// Count reads a list length written by AppendUvarint, for a list whose
// elements each take at least minSize bytes (1 if less is given): a count
// that the unread bytes cannot hold fails, so a caller may allocate for
// it.
func (d *Decoder) Count(field string, minSize int) int {
	n := d.Uvarint(field)
	if d.err == nil && n > uint64(len(d.buf)/max(minSize, 1)) {
		d.Failf(field, "%d elements cannot fit in %d bytes", n, len(d.buf))
		return 0
	}
	return int(n)
}
