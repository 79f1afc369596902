// Package wire is shoal's one binary encoding toolkit: append helpers that
// write unsigned and signed varints, fixed-width integers, flag bytes and
// length-prefixed byte runs, and a Decoder that reads them back from a
// byte slice with a sticky error. The modules' Raft commands and snapshots,
// kv's gossip messages and records, and the batches followers forward to
// the leader are all written and read with it; each of those formats is
// declared by the package that owns it, on top of these primitives.
//
// Encodings are canonical: the Append helpers write the minimal varint
// (exactly what encoding/binary's AppendUvarint and AppendVarint write),
// and the Decoder refuses any other form, so one value has exactly one
// encoding and decoding then re-encoding gives back the same bytes. Every
// decode failure is a *FieldError naming the field that failed and
// wrapping ErrMalformed.
//
// This package must never know any format built on it (no module, tag or
// command lives here), never panic on any input, never allocate in
// proportion to a length the input claims rather than to the input itself,
// and never import anything but the standard library, so that every layer
// can use it. It is for whole messages held in memory; streams read
// incrementally (peer RPC frames, consensus snapshots) have their own
// readers.
package wire
