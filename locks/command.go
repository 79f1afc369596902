package locks

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Command ops of the locks module (the byte after the module's tag). An op
// is part of the replicated log format: never change or reuse one.
const (
	opCreate  byte = 1 // create a semaphore, or change its limit
	opDelete  byte = 2 // delete a semaphore
	opAcquire byte = 3 // acquire (or renew by acquiring again), maybe queueing
	opRelease byte = 4 // release a hold (and any wait of the same holder)
	opRenew   byte = 5 // extend a lease
	opCancel  byte = 6 // a request gave up: drop its wait, or release its grant
	opExpire  byte = 7 // the leader expires leases and waits that are due
	opRearm   byte = 8 // a new leader re-arms every deadline
)

// Payloads are compact binary: integers are varints (times signed, the
// rest unsigned), strings are length-prefixed, kind, mode and flags are
// one byte. Durations are nanoseconds.
//
//	opCreate   name limit update
//	opDelete   name
//	opAcquire  kind name holder mode ttl wait createLimit nonce
//	opRelease  kind name holder
//	opRenew    kind name holder ttl
//	opCancel   kind name holder nonce
//	opExpire   count × ( kind name isWaiter holder id deadline )
//	opRearm    (empty)
//
// In opExpire, id is a hold's token or a wait's nonce. The decoders enforce
// the same limits as the HTTP layer (except the configurable TTL bounds),
// so a state machine never holds what the API would refuse.

// maxExpireBatch bounds the items of one opExpire.
const maxExpireBatch = 1024

type createCmd struct {
	name   string
	limit  int
	update bool
}

type deleteCmd struct {
	name string
}

type acquireCmd struct {
	kind        kind
	name        string
	holder      string
	mode        mode
	ttl         time.Duration
	wait        time.Duration // 0: answer at once
	createLimit int           // semaphores: create with this limit if missing (0: do not)
	nonce       uint64        // names this request; never 0
}

type releaseCmd struct {
	kind   kind
	name   string
	holder string
}

type renewCmd struct {
	kind   kind
	name   string
	holder string
	ttl    time.Duration
}

type cancelCmd struct {
	kind   kind
	name   string
	holder string
	nonce  uint64
}

// expireItem names one due lease (waiter false, id its token) or wait
// (waiter true, id its nonce) and the deadline the leader saw.
type expireItem struct {
	kind     kind
	name     string
	waiter   bool
	holder   string
	id       uint64
	deadline int64
}

type expireCmd struct {
	items []expireItem
}

// Results, returned through Raft.Apply to the node that submitted the
// command.

type createResult byte

const (
	createdNew     createResult = 1
	createdExists  createResult = 2
	createdUpdated createResult = 3
)

type deleteResult struct {
	released, failed int
}

// acquireResult is the result of opAcquire and opRenew.
type acquireResult struct {
	granted bool
	queued  bool
	token   uint64
	expires int64
}

type releaseResult byte

const (
	releasedHold releaseResult = 1 << 0
	releasedWait releaseResult = 1 << 1
)

type cancelResult byte

const (
	cancelNone     cancelResult = 0
	cancelDequeued cancelResult = 1
	cancelReleased cancelResult = 2
)

// encoder appends the wire encoding to b.
type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

func encodeCreate(c createCmd) []byte {
	var e encoder
	e.str(c.name)
	e.uvarint(uint64(c.limit))
	e.bool(c.update)
	return e.b
}

func encodeDelete(c deleteCmd) []byte {
	var e encoder
	e.str(c.name)
	return e.b
}

func encodeAcquire(c acquireCmd) []byte {
	var e encoder
	e.byte(byte(c.kind))
	e.str(c.name)
	e.str(c.holder)
	e.byte(byte(c.mode))
	e.uvarint(uint64(c.ttl))
	e.uvarint(uint64(c.wait))
	e.uvarint(uint64(c.createLimit))
	e.uvarint(c.nonce)
	return e.b
}

func encodeRelease(c releaseCmd) []byte {
	var e encoder
	e.byte(byte(c.kind))
	e.str(c.name)
	e.str(c.holder)
	return e.b
}

func encodeRenew(c renewCmd) []byte {
	var e encoder
	e.byte(byte(c.kind))
	e.str(c.name)
	e.str(c.holder)
	e.uvarint(uint64(c.ttl))
	return e.b
}

func encodeCancel(c cancelCmd) []byte {
	var e encoder
	e.byte(byte(c.kind))
	e.str(c.name)
	e.str(c.holder)
	e.uvarint(c.nonce)
	return e.b
}

func encodeExpire(c expireCmd) []byte {
	var e encoder
	e.uvarint(uint64(len(c.items)))
	for _, it := range c.items {
		e.byte(byte(it.kind))
		e.str(it.name)
		e.bool(it.waiter)
		e.str(it.holder)
		e.uvarint(it.id)
		e.varint(it.deadline)
	}
	return e.b
}

// decoder reads the wire encoding. After the first failure every read
// returns zero values and err stays set; every failure wraps base.
type decoder struct {
	b    []byte
	err  error
	base error
}

func newDecoder(b []byte, base error) *decoder { return &decoder{b: b, base: base} }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, d.base)...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("missing byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool() bool {
	switch v := d.byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("flag byte %d", v)
		return false
	}
}

// str reads a length-prefixed string of at most limit bytes (a copy).
func (d *decoder) str(limit int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("string of %d bytes over the limit of %d or past the end", n, limit)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) kind() kind {
	k := kind(d.byte())
	if d.err == nil && !validKind(k) {
		d.fail("kind %d", k)
	}
	return k
}

func (d *decoder) name() string {
	s := d.str(maxNameLen)
	if d.err == nil && !validName(s) {
		d.fail("name %q", s)
	}
	return s
}

func (d *decoder) holder() string {
	s := d.str(maxHolderLen)
	if d.err == nil && !validHolder(s) {
		d.fail("holder %q", s)
	}
	return s
}

// duration reads a duration in (min-1, max]: lowest is 0 or 1.
func (d *decoder) duration(what string, lowest, highest time.Duration) time.Duration {
	v := d.uvarint()
	if d.err == nil && (v > math.MaxInt64 || time.Duration(v) < lowest || time.Duration(v) > highest) {
		d.fail("%s of %d ns", what, v)
		return 0
	}
	return time.Duration(v)
}

func (d *decoder) limit(lowest int) int {
	v := d.uvarint()
	if d.err == nil && (v < uint64(lowest) || v > maxLimit) {
		d.fail("limit %d", v)
		return 0
	}
	return int(v)
}

func (d *decoder) nonce() uint64 {
	v := d.uvarint()
	if d.err == nil && v == 0 {
		d.fail("nonce 0")
	}
	return v
}

// end checks that everything was read.
func (d *decoder) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}

func decodeCreate(p []byte) (createCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	c := createCmd{name: d.name(), limit: d.limit(1), update: d.bool()}
	if err := d.end("create command"); err != nil {
		return createCmd{}, err
	}
	return c, nil
}

func decodeDelete(p []byte) (deleteCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	c := deleteCmd{name: d.name()}
	if err := d.end("delete command"); err != nil {
		return deleteCmd{}, err
	}
	return c, nil
}

func decodeAcquire(p []byte) (acquireCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	var c acquireCmd
	c.kind = d.kind()
	c.name = d.name()
	c.holder = d.holder()
	c.mode = mode(d.byte())
	if d.err == nil && !validMode(c.kind, c.mode) {
		d.fail("mode %d for a %s", c.mode, c.kind)
	}
	c.ttl = d.duration("ttl", 1, maxTTLBound)
	c.wait = d.duration("wait", 0, maxWaitBound)
	c.createLimit = d.limit(0)
	if d.err == nil && c.createLimit > 0 && c.kind != kindSemaphore {
		d.fail("create limit for a %s", c.kind)
	}
	c.nonce = d.nonce()
	if err := d.end("acquire command"); err != nil {
		return acquireCmd{}, err
	}
	return c, nil
}

func decodeRelease(p []byte) (releaseCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	c := releaseCmd{kind: d.kind(), name: d.name(), holder: d.holder()}
	if err := d.end("release command"); err != nil {
		return releaseCmd{}, err
	}
	return c, nil
}

func decodeRenew(p []byte) (renewCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	c := renewCmd{kind: d.kind(), name: d.name(), holder: d.holder()}
	c.ttl = d.duration("ttl", 1, maxTTLBound)
	if err := d.end("renew command"); err != nil {
		return renewCmd{}, err
	}
	return c, nil
}

func decodeCancel(p []byte) (cancelCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	c := cancelCmd{kind: d.kind(), name: d.name(), holder: d.holder()}
	c.nonce = d.nonce()
	if err := d.end("cancel command"); err != nil {
		return cancelCmd{}, err
	}
	return c, nil
}

func decodeExpire(p []byte) (expireCmd, error) {
	d := newDecoder(p, ErrMalformedCommand)
	n := d.uvarint()
	if d.err == nil && (n == 0 || n > maxExpireBatch) {
		d.fail("%d items", n)
	}
	var c expireCmd
	for i := uint64(0); i < n && d.err == nil; i++ {
		it := expireItem{kind: d.kind(), name: d.name(), waiter: d.bool(), holder: d.holder()}
		if it.waiter {
			it.id = d.nonce()
		} else {
			it.id = d.uvarint()
		}
		it.deadline = d.varint()
		c.items = append(c.items, it)
	}
	if err := d.end("expire command"); err != nil {
		return expireCmd{}, err
	}
	return c, nil
}

func decodeRearm(p []byte) error {
	if len(p) != 0 {
		return fmt.Errorf("decode rearm command: %d bytes: %w", len(p), ErrMalformedCommand)
	}
	return nil
}

// Result encodings.

func encodeAcquireResult(r acquireResult) []byte {
	var e encoder
	switch {
	case r.granted:
		e.byte(1)
		e.uvarint(r.token)
		e.varint(r.expires)
	default:
		e.byte(2)
	}
	return e.b
}

func decodeAcquireResult(b []byte) (acquireResult, error) {
	d := newDecoder(b, ErrMalformedCommand)
	var r acquireResult
	switch v := d.byte(); {
	case d.err != nil:
	case v == 1:
		r.granted = true
		r.token = d.uvarint()
		r.expires = d.varint()
		if d.err == nil && r.token == 0 {
			d.fail("token 0")
		}
	case v == 2:
		r.queued = true
	default:
		d.fail("acquire status %d", v)
	}
	if err := d.end("acquire result"); err != nil {
		return acquireResult{}, err
	}
	return r, nil
}

func encodeDeleteResult(r deleteResult) []byte {
	var e encoder
	e.uvarint(uint64(r.released))
	e.uvarint(uint64(r.failed))
	return e.b
}

func decodeDeleteResult(b []byte) (deleteResult, error) {
	d := newDecoder(b, ErrMalformedCommand)
	released, failed := d.uvarint(), d.uvarint()
	if d.err == nil && (released > math.MaxInt32 || failed > math.MaxInt32) {
		d.fail("counts %d and %d", released, failed)
	}
	if err := d.end("delete result"); err != nil {
		return deleteResult{}, err
	}
	return deleteResult{released: int(released), failed: int(failed)}, nil
}

// decodeByteResult decodes a one-byte result of at most highest.
func decodeByteResult(b []byte, highest byte, what string) (byte, error) {
	if len(b) != 1 || b[0] > highest {
		return 0, fmt.Errorf("decode %s %x: %w", what, b, ErrMalformedCommand)
	}
	return b[0], nil
}
