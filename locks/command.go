package locks

import (
	"fmt"
	"math"
	"time"

	"shoal/internal/wire"
	"shoal/modules"
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
	// opCapped carries an opCreate or opAcquire with the cluster's caps on
	// semaphores and locks (--locks-max-semaphores, --locks-max-locks) of
	// the node that submitted it: one that would create a semaphore or a
	// lock past its cap is refused, alike on every node.
	opCapped byte = 9
)

// encodeCapped wraps the payload of an opCreate or opAcquire (op):
// uvarint max semaphores, uvarint max locks, op, the inner payload.
func encodeCapped(c caps, op byte, payload []byte) []byte {
	b := wire.AppendUvarint(nil, c.semaphores)
	b = wire.AppendUvarint(b, c.locks)
	b = append(b, op)
	return append(b, payload...)
}

// caps are the caps of an opCapped; 0 is no cap.
type caps struct{ semaphores, locks uint64 }

// decodeCapped unwraps an opCapped payload.
func decodeCapped(payload []byte) (caps, byte, []byte, error) {
	d := wire.NewDecoder(payload)
	var c caps
	c.semaphores = d.Uvarint("max semaphores")
	c.locks = d.Uvarint("max locks")
	op := d.Byte("capped op")
	if err := d.Err(); err != nil {
		return caps{}, 0, nil, fmt.Errorf("decode capped command: %w: %w", ErrMalformedCommand, err)
	}
	if op != opCreate && op != opAcquire {
		return caps{}, 0, nil, fmt.Errorf("capped command of op %d: %w", op, ErrMalformedCommand)
	}
	return c, op, d.Rest(), nil
}

// Payloads are compact binary in the primitives of internal/wire: integers
// are minimal varints (times signed, the rest unsigned), strings are
// length-prefixed, kind, mode and flags are one byte. Durations are
// nanoseconds.
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

func encodeCreate(c createCmd) []byte {
	b := wire.AppendBytes(nil, c.name)
	b = wire.AppendUvarint(b, uint64(c.limit))
	return wire.AppendBool(b, c.update)
}

func encodeDelete(c deleteCmd) []byte {
	return wire.AppendBytes(nil, c.name)
}

func encodeAcquire(c acquireCmd) []byte {
	b := []byte{byte(c.kind)}
	b = wire.AppendBytes(b, c.name)
	b = wire.AppendBytes(b, c.holder)
	b = append(b, byte(c.mode))
	b = wire.AppendUvarint(b, uint64(c.ttl))
	b = wire.AppendUvarint(b, uint64(c.wait))
	b = wire.AppendUvarint(b, uint64(c.createLimit))
	return wire.AppendUvarint(b, c.nonce)
}

func encodeRelease(c releaseCmd) []byte {
	b := []byte{byte(c.kind)}
	b = wire.AppendBytes(b, c.name)
	return wire.AppendBytes(b, c.holder)
}

func encodeRenew(c renewCmd) []byte {
	b := []byte{byte(c.kind)}
	b = wire.AppendBytes(b, c.name)
	b = wire.AppendBytes(b, c.holder)
	return wire.AppendUvarint(b, uint64(c.ttl))
}

func encodeCancel(c cancelCmd) []byte {
	b := []byte{byte(c.kind)}
	b = wire.AppendBytes(b, c.name)
	b = wire.AppendBytes(b, c.holder)
	return wire.AppendUvarint(b, c.nonce)
}

func encodeExpire(c expireCmd) []byte {
	b := wire.AppendUvarint(nil, uint64(len(c.items)))
	for _, it := range c.items {
		b = append(b, byte(it.kind))
		b = wire.AppendBytes(b, it.name)
		b = wire.AppendBool(b, it.waiter)
		b = wire.AppendBytes(b, it.holder)
		b = wire.AppendUvarint(b, it.id)
		b = wire.AppendVarint(b, it.deadline)
	}
	return b
}

// decoder reads the encoding: a wire.Decoder (after the first failure
// every read returns zero values and Err stays set) with the fields of
// this module on top.
type decoder struct{ *wire.Decoder }

func newDecoder(b []byte) decoder { return decoder{wire.NewDecoder(b)} }

func (d decoder) kind() kind {
	k := kind(d.Byte("kind"))
	if d.Err() == nil && !validKind(k) {
		d.Failf("kind", "kind %d", k)
	}
	return k
}

func (d decoder) name() string {
	s := d.String("name", maxNameLen)
	if d.Err() == nil && !modules.ValidName(s) {
		d.Failf("name", "name %q", s)
	}
	return s
}

func (d decoder) holder() string {
	s := d.String("holder", maxHolderLen)
	if d.Err() == nil && !validHolder(s) {
		d.Failf("holder", "holder %q", s)
	}
	return s
}

// duration reads a duration in [lowest, highest]: lowest is 0 or 1.
func (d decoder) duration(field string, lowest, highest time.Duration) time.Duration {
	v := d.Uvarint(field)
	if d.Err() == nil && (v > math.MaxInt64 || time.Duration(v) < lowest || time.Duration(v) > highest) {
		d.Failf(field, "%s of %d ns", field, v)
		return 0
	}
	return time.Duration(v)
}

func (d decoder) limit(lowest int) int {
	v := d.Uvarint("limit")
	if d.Err() == nil && (v < uint64(lowest) || v > maxLimit) {
		d.Failf("limit", "limit %d", v)
		return 0
	}
	return int(v)
}

func (d decoder) nonce() uint64 {
	v := d.Uvarint("nonce")
	if d.Err() == nil && v == 0 {
		d.Failf("nonce", "nonce 0")
	}
	return v
}

// end checks that a command or result was read whole, and returns the
// first failure, if any, as an ErrMalformedCommand.
func (d decoder) end(what string) error {
	if err := d.End(); err != nil {
		return fmt.Errorf("decode %s: %w: %w", what, ErrMalformedCommand, err)
	}
	return nil
}

func decodeCreate(p []byte) (createCmd, error) {
	d := newDecoder(p)
	c := createCmd{name: d.name(), limit: d.limit(1), update: d.Bool("update")}
	if err := d.end("create command"); err != nil {
		return createCmd{}, err
	}
	return c, nil
}

func decodeDelete(p []byte) (deleteCmd, error) {
	d := newDecoder(p)
	c := deleteCmd{name: d.name()}
	if err := d.end("delete command"); err != nil {
		return deleteCmd{}, err
	}
	return c, nil
}

func decodeAcquire(p []byte) (acquireCmd, error) {
	d := newDecoder(p)
	var c acquireCmd
	c.kind = d.kind()
	c.name = d.name()
	c.holder = d.holder()
	c.mode = mode(d.Byte("mode"))
	if d.Err() == nil && !validMode(c.kind, c.mode) {
		d.Failf("mode", "mode %d for a %s", c.mode, c.kind)
	}
	c.ttl = d.duration("ttl", 1, maxTTLBound)
	c.wait = d.duration("wait", 0, maxWaitBound)
	c.createLimit = d.limit(0)
	if d.Err() == nil && c.createLimit > 0 && c.kind != kindSemaphore {
		d.Failf("limit", "create limit for a %s", c.kind)
	}
	c.nonce = d.nonce()
	if err := d.end("acquire command"); err != nil {
		return acquireCmd{}, err
	}
	return c, nil
}

func decodeRelease(p []byte) (releaseCmd, error) {
	d := newDecoder(p)
	c := releaseCmd{kind: d.kind(), name: d.name(), holder: d.holder()}
	if err := d.end("release command"); err != nil {
		return releaseCmd{}, err
	}
	return c, nil
}

func decodeRenew(p []byte) (renewCmd, error) {
	d := newDecoder(p)
	c := renewCmd{kind: d.kind(), name: d.name(), holder: d.holder()}
	c.ttl = d.duration("ttl", 1, maxTTLBound)
	if err := d.end("renew command"); err != nil {
		return renewCmd{}, err
	}
	return c, nil
}

func decodeCancel(p []byte) (cancelCmd, error) {
	d := newDecoder(p)
	c := cancelCmd{kind: d.kind(), name: d.name(), holder: d.holder()}
	c.nonce = d.nonce()
	if err := d.end("cancel command"); err != nil {
		return cancelCmd{}, err
	}
	return c, nil
}

func decodeExpire(p []byte) (expireCmd, error) {
	d := newDecoder(p)
	n := d.Uvarint("item count")
	if d.Err() == nil && (n == 0 || n > maxExpireBatch) {
		d.Failf("item count", "%d items", n)
	}
	var c expireCmd
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		it := expireItem{kind: d.kind(), name: d.name(), waiter: d.Bool("waiter"), holder: d.holder()}
		if it.waiter {
			it.id = d.nonce()
		} else {
			it.id = d.Uvarint("token")
		}
		it.deadline = d.Varint("deadline")
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
	if !r.granted {
		return []byte{2}
	}
	b := wire.AppendUvarint([]byte{1}, r.token)
	return wire.AppendVarint(b, r.expires)
}

func decodeAcquireResult(b []byte) (acquireResult, error) {
	d := newDecoder(b)
	var r acquireResult
	switch v := d.Byte("status"); {
	case d.Err() != nil:
	case v == 1:
		r.granted = true
		r.token = d.Uvarint("token")
		r.expires = d.Varint("expires")
		if d.Err() == nil && r.token == 0 {
			d.Failf("token", "token 0")
		}
	case v == 2:
		r.queued = true
	default:
		d.Failf("status", "acquire status %d", v)
	}
	if err := d.end("acquire result"); err != nil {
		return acquireResult{}, err
	}
	return r, nil
}

func encodeDeleteResult(r deleteResult) []byte {
	b := wire.AppendUvarint(nil, uint64(r.released))
	return wire.AppendUvarint(b, uint64(r.failed))
}

func decodeDeleteResult(b []byte) (deleteResult, error) {
	d := newDecoder(b)
	released, failed := d.Uvarint("released"), d.Uvarint("failed")
	if d.Err() == nil && (released > math.MaxInt32 || failed > math.MaxInt32) {
		d.Failf("released", "counts %d and %d", released, failed)
	}
	if err := d.end("delete result"); err != nil {
		return deleteResult{}, err
	}
	return deleteResult{released: int(released), failed: int(failed)}, nil
}

// encodeExpireResult is the result of opExpire: how many leases and waits
// it expired.
func encodeExpireResult(expired int) []byte {
	return wire.AppendUvarint(nil, uint64(expired))
}

func decodeExpireResult(b []byte) (uint64, error) {
	d := newDecoder(b)
	expired := d.Uvarint("expired")
	if err := d.end("expire result"); err != nil {
		return 0, err
	}
	return expired, nil
}

// decodeByteResult decodes a one-byte result of at most highest.
func decodeByteResult(b []byte, highest byte, what string) (byte, error) {
	if len(b) != 1 || b[0] > highest {
		return 0, fmt.Errorf("decode %s %x: %w", what, b, ErrMalformedCommand)
	}
	return b[0], nil
}
