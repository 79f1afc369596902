package acl

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"shoal/internal/wire"
)

// Token is an ACL token as the cluster stores it: never its secret, which
// only its creator saw once.
type Token struct {
	// AccessorID names the token in the API (a UUID); it is not secret.
	AccessorID string
	// Name is unique in the cluster.
	Name  string
	Rules []Rule
	// Created is the time of the create command (the leader's clock).
	Created time.Time
	// Expires is when the token stops working; zero means never.
	Expires time.Time
}

// Allows reports whether one of the token's rules allows res (see
// Rule.Allows). It does not look at Expires: Authenticate refuses an
// expired token before any Allows.
func (t Token) Allows(res Resource) bool {
	for _, r := range t.Rules {
		if r.Allows(res) {
			return true
		}
	}
	return false
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// entry is one token in the state. Times are Unix nanoseconds; expires 0
// means never.
type entry struct {
	accessor string
	name     string
	hash     [hashLen]byte
	rules    []Rule
	created  int64
	expires  int64
}

func (e *entry) token() Token {
	t := Token{AccessorID: e.accessor, Name: e.name, Rules: slices.Clone(e.rules), Created: time.Unix(0, e.created).UTC()}
	if e.expires != 0 {
		t.Expires = time.Unix(0, e.expires).UTC()
	}
	return t
}

// state is the replicated state: the tokens, indexed three ways. Only the
// FSM goroutine changes it.
type state struct {
	byAccessor map[string]*entry
	byName     map[string]*entry
	byHash     map[[hashLen]byte]*entry
}

func newState() *state {
	return &state{byAccessor: map[string]*entry{}, byName: map[string]*entry{}, byHash: map[[hashLen]byte]*entry{}}
}

func (st *state) add(e *entry) {
	st.byAccessor[e.accessor], st.byName[e.name], st.byHash[e.hash] = e, e, e
}

func (st *state) remove(e *entry) {
	delete(st.byAccessor, e.accessor)
	delete(st.byName, e.name)
	delete(st.byHash, e.hash)
}

// create adds the token of c, created at now. A refused create changes
// nothing.
func (st *state) create(c createCmd, now int64) (*entry, error) {
	switch {
	case st.byName[c.name] != nil:
		return nil, ErrNameTaken.WithMessage("a token named %q exists", c.name)
	case st.byAccessor[c.accessor] != nil || st.byHash[c.hash] != nil:
		return nil, ErrDuplicateToken
	case len(st.byAccessor) >= maxTokens:
		return nil, ErrTooManyTokens
	}
	e := &entry{accessor: c.accessor, name: c.name, hash: c.hash, rules: slices.Clone(c.rules), created: now}
	if c.ttl != 0 {
		e.expires = now + int64(c.ttl)
		if e.expires == 0 { // a ttl landing exactly on the epoch: keep it expiring
			e.expires = 1
		}
	}
	st.add(e)
	return e, nil
}

// revoke removes the token c names.
func (st *state) revoke(c revokeCmd) (*entry, error) {
	e := st.byAccessor[c.id]
	if c.byName {
		e = st.byName[c.id]
	}
	if e == nil {
		return nil, ErrTokenNotFound
	}
	st.remove(e)
	return e, nil
}

// expire removes the tokens of c that exist and have expired at now (the
// command's time: a token the leader saw as expired by a clock ahead of
// the command's stays).
func (st *state) expire(c expireCmd, now int64) []string {
	var gone []string
	for _, a := range c.accessors {
		e := st.byAccessor[a]
		if e == nil || e.expires == 0 || e.expires > now {
			continue
		}
		st.remove(e)
		gone = append(gone, a)
	}
	return gone
}

// due returns up to limit accessors of tokens expired at now, in accessor
// order.
func (st *state) due(now int64, limit int) []string {
	var out []string
	for a, e := range st.byAccessor {
		if e.expires != 0 && e.expires <= now {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// sorted returns the entries in accessor order.
func (st *state) sorted() []*entry {
	out := make([]*entry, 0, len(st.byAccessor))
	for _, e := range st.byAccessor {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.accessor, b.accessor) })
	return out
}

// A snapshot is the whole state in the primitives of internal/wire:
//
//	"SACL" version(1) count
//	count × ( accessor name hash created expires ruleCount ruleCount × rule )
//
// Tokens are in accessor order, so equal states persist to equal bytes.
// The state is small (at most 10,000 tokens), so Snapshot encodes it at
// once on the FSM goroutine and Persist only writes the bytes.
const (
	snapshotMagic   = "SACL"
	snapshotVersion = 1
)

func (st *state) encode() []byte {
	b := append([]byte(snapshotMagic), snapshotVersion)
	b = wire.AppendUvarint(b, uint64(len(st.byAccessor)))
	for _, e := range st.sorted() {
		b = wire.AppendBytes(b, e.accessor)
		b = wire.AppendBytes(b, e.name)
		b = append(b, e.hash[:]...)
		b = wire.AppendVarint(b, e.created)
		b = wire.AppendVarint(b, e.expires)
		b = wire.AppendUvarint(b, uint64(len(e.rules)))
		for _, r := range e.rules {
			b = wire.AppendBytes(b, r.String())
		}
	}
	return b
}

// readSnapshot decodes what Persist wrote into a new state; an empty
// reader is the empty state. It never panics.
func readSnapshot(r io.Reader) (*state, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("restore acl snapshot: read: %w", err)
	}
	st, err := decodeSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("restore acl snapshot: %w", err)
	}
	return st, nil
}

func decodeSnapshot(b []byte) (*state, error) {
	st := newState()
	if len(b) == 0 {
		return st, nil
	}
	d := newDecoder(b)
	d.Header(snapshotMagic, snapshotVersion)
	n := d.Uvarint("count")
	if d.Err() == nil && n > maxTokens {
		d.Failf("count", "%d tokens", n)
	}
	prev := ""
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		e := &entry{accessor: d.accessor(), name: d.name()}
		copy(e.hash[:], d.Raw("hash", hashLen))
		e.created = d.Varint("created")
		e.expires = d.Varint("expires")
		e.rules = d.rules()
		switch {
		case d.Err() != nil:
		case e.accessor <= prev:
			d.Failf("accessor", "token %q out of order after %q", e.accessor, prev)
		case st.byName[e.name] != nil:
			d.Failf("name", "name %q twice", e.name)
		case st.byHash[e.hash] != nil:
			d.Failf("hash", "token %q has the hash of another", e.accessor)
		}
		if d.Err() != nil {
			break
		}
		prev = e.accessor
		st.add(e)
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w: %w", ErrMalformedSnapshot, err)
	}
	return st, nil
}
