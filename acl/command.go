package acl

import (
	"fmt"
	"math"
	"time"

	"shoal/internal/wire"
	"shoal/modules"
)

// Tag is the acl module's command tag: the first byte of its Raft
// commands (modules.TagACL).
const Tag = modules.TagACL

// Command ops (the byte after the tag). An op is part of the replicated
// log format: never change or reuse one.
const (
	opCreate byte = 1 // create a token (its secret's hash, never the secret)
	opRevoke byte = 2 // remove a token, by accessor id or by name
	opExpire byte = 3 // the leader removes tokens whose expiry has passed
)

// Limits, enforced where requests enter and again by the decoders.
const (
	maxTokens      = 10000
	maxRules       = 64
	maxNameLen     = modules.MaxNameLen
	maxExpireBatch = 1024
	accessorLen    = 36 // a UUID: 8-4-4-4-12 lowercase hex digits
	hashLen        = 32 // SHA-256
)

// Payloads are compact binary in the primitives of internal/wire:
// strings are length-prefixed, integers minimal varints (durations in
// nanoseconds), the hash 32 raw bytes, rules their canonical text.
//
//	opCreate  accessor name hash ttl count × rule      (ttl 0: never expires)
//	opRevoke  byName id
//	opExpire  count × accessor
//
// Results, returned to the node that submitted the command:
//
//	opCreate  created expires   (Unix nanoseconds, signed; expires 0: never)
//	opRevoke  accessor name
//	opExpire  count             (tokens removed)

type createCmd struct {
	accessor string
	name     string
	hash     [hashLen]byte
	ttl      time.Duration
	rules    []Rule
}

type revokeCmd struct {
	byName bool
	id     string
}

type expireCmd struct {
	accessors []string
}

func encodeCreate(c createCmd) []byte {
	b := wire.AppendBytes(nil, c.accessor)
	b = wire.AppendBytes(b, c.name)
	b = append(b, c.hash[:]...)
	b = wire.AppendUvarint(b, uint64(c.ttl))
	b = wire.AppendUvarint(b, uint64(len(c.rules)))
	for _, r := range c.rules {
		b = wire.AppendBytes(b, r.String())
	}
	return b
}

func decodeCreate(p []byte) (createCmd, error) {
	d := newDecoder(p)
	c := createCmd{accessor: d.accessor(), name: d.name()}
	copy(c.hash[:], d.Raw("hash", hashLen))
	ttl := d.Uvarint("ttl")
	if d.Err() == nil && ttl != 0 && (ttl > math.MaxInt64 || time.Duration(ttl) < minTTL || time.Duration(ttl) > maxTTLBound) {
		d.Failf("ttl", "ttl of %d ns", ttl)
	}
	c.ttl = time.Duration(ttl)
	c.rules = d.rules()
	if err := d.End(); err != nil {
		return createCmd{}, fmt.Errorf("decode create: %w: %w", ErrMalformedCommand, err)
	}
	return c, nil
}

func encodeRevoke(c revokeCmd) []byte {
	return wire.AppendBytes(wire.AppendBool(nil, c.byName), c.id)
}

func decodeRevoke(p []byte) (revokeCmd, error) {
	d := newDecoder(p)
	c := revokeCmd{byName: d.Bool("by name")}
	if c.byName {
		c.id = d.name()
	} else {
		c.id = d.accessor()
	}
	if err := d.End(); err != nil {
		return revokeCmd{}, fmt.Errorf("decode revoke: %w: %w", ErrMalformedCommand, err)
	}
	return c, nil
}

func encodeExpire(c expireCmd) []byte {
	b := wire.AppendUvarint(nil, uint64(len(c.accessors)))
	for _, a := range c.accessors {
		b = wire.AppendBytes(b, a)
	}
	return b
}

func decodeExpire(p []byte) (expireCmd, error) {
	d := newDecoder(p)
	n := d.Uvarint("count")
	if d.Err() == nil && (n == 0 || n > maxExpireBatch) {
		d.Failf("count", "%d tokens", n)
	}
	var c expireCmd
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		c.accessors = append(c.accessors, d.accessor())
	}
	if err := d.End(); err != nil {
		return expireCmd{}, fmt.Errorf("decode expire: %w: %w", ErrMalformedCommand, err)
	}
	return c, nil
}

func encodeCreateResult(created, expires int64) []byte {
	return wire.AppendVarint(wire.AppendVarint(nil, created), expires)
}

func decodeCreateResult(b []byte) (created, expires int64, err error) {
	d := newDecoder(b)
	created, expires = d.Varint("created"), d.Varint("expires")
	if err := d.End(); err != nil {
		return 0, 0, fmt.Errorf("decode create result: %w: %w", ErrMalformedCommand, err)
	}
	return created, expires, nil
}

func encodeExpireResult(n int) []byte { return wire.AppendUvarint(nil, uint64(n)) }

func decodeExpireResult(b []byte) (int, error) {
	d := newDecoder(b)
	n := d.Uvarint("count")
	if d.Err() == nil && n > maxExpireBatch {
		d.Failf("count", "%d tokens", n)
	}
	if err := d.End(); err != nil {
		return 0, fmt.Errorf("decode expire result: %w: %w", ErrMalformedCommand, err)
	}
	return int(n), nil
}

func encodeRevokeResult(accessor, name string) []byte {
	return wire.AppendBytes(wire.AppendBytes(nil, accessor), name)
}

func decodeRevokeResult(b []byte) (accessor, name string, err error) {
	d := newDecoder(b)
	accessor, name = d.accessor(), d.name()
	if err := d.End(); err != nil {
		return "", "", fmt.Errorf("decode revoke result: %w: %w", ErrMalformedCommand, err)
	}
	return accessor, name, nil
}

// decoder is a wire.Decoder with this module's fields on top.
type decoder struct{ *wire.Decoder }

func newDecoder(b []byte) decoder { return decoder{wire.NewDecoder(b)} }

func (d decoder) accessor() string {
	s := d.String("accessor", accessorLen)
	if d.Err() == nil && !validAccessor(s) {
		d.Failf("accessor", "accessor %q", s)
	}
	return s
}

func (d decoder) name() string {
	s := d.String("name", maxNameLen)
	if d.Err() == nil && !validName(s) {
		d.Failf("name", "name %q", s)
	}
	return s
}

// rules reads 1 to maxRules rules, each in its canonical text.
func (d decoder) rules() []Rule {
	n := d.Uvarint("rule count")
	if d.Err() == nil && (n == 0 || n > maxRules) {
		d.Failf("rule count", "%d rules", n)
	}
	var rules []Rule
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		s := d.String("rule", MaxRuleLen)
		if d.Err() != nil {
			break
		}
		r, err := ParseRule(s)
		switch {
		case err != nil:
			d.Failf("rule", "%s", err.Error())
		case r.String() != s:
			d.Failf("rule", "rule %q not in its canonical form %q", s, r.String())
		default:
			rules = append(rules, r)
		}
	}
	return rules
}

// validAccessor reports whether s is shaped like an accessor id: a UUID
// in lowercase hex (8-4-4-4-12).
func validAccessor(s string) bool {
	if len(s) != accessorLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// validName reports whether s may name a token: a name the API accepts
// elsewhere (modules.ValidAPIName) that is not shaped like an accessor
// id, so "revoke by accessor id or name" is never ambiguous.
func validName(s string) bool {
	return modules.ValidAPIName(s) && !validAccessor(s)
}
