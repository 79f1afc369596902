package logstream

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// Group commit. Concurrent publishes on one node are coalesced into one Raft
// command (opAppendGroups): every publish that arrives while earlier ones
// are being committed joins the next command. A log entry in Raft costs a
// disk write and replication to every follower, so one entry for many
// publishes is what lets a busy log keep up (as one fsync for many
// transactions does in a database). Each publish stays its own group in the
// command: applied in order, deduplicated and answered on its own, exactly
// as if it had been committed alone.

const (
	// maxGroups bounds the publishes in one command.
	maxGroups = 256
	// maxGroupBytes bounds a command's size, roughly; one larger publish
	// travels alone.
	maxGroupBytes = 1 << 20
	// commitsInFlight is how many commands a node may have in Raft at once.
	commitsInFlight = 8
)

// publishReq is one publish waiting to be committed.
type publishReq struct {
	payload []byte // an opAppend payload
	done    chan publishOutcome
}

type publishOutcome struct {
	res   appendResult
	index uint64 // the Raft index of the command that carried it
	err   error
}

// committer coalesces publishes into commands. Flushers are goroutines
// started on demand, at most commitsInFlight, each ending when the queue is
// empty; stop waits for them.
type committer struct {
	apply func(ctx context.Context, op byte, payload []byte) (modules.Applied, error)

	ctx    context.Context // cancelled by stop: aborts commands in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	queue    []*publishReq
	flushers int
	stopped  bool
}

func newCommitter(apply func(ctx context.Context, op byte, payload []byte) (modules.Applied, error)) *committer {
	ctx, cancel := context.WithCancel(context.Background())
	return &committer{apply: apply, ctx: ctx, cancel: cancel}
}

// submit queues an opAppend payload and waits for its outcome or for ctx.
func (c *committer) submit(ctx context.Context, payload []byte) publishOutcome {
	req := &publishReq{payload: payload, done: make(chan publishOutcome, 1)}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return publishOutcome{err: httpjson.ErrShuttingDown}
	}
	c.queue = append(c.queue, req)
	if c.flushers < commitsInFlight {
		c.flushers++
		c.wg.Add(1)
		go c.flush()
	}
	c.mu.Unlock()
	select {
	case out := <-req.done:
		return out
	case <-ctx.Done():
		return publishOutcome{err: ctx.Err()}
	}
}

// flush commits queued publishes until the queue is empty.
func (c *committer) flush() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.flushers--
			c.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(c.queue) && n < maxGroups && (n == 0 || size+len(c.queue[n].payload) <= maxGroupBytes) {
			size += len(c.queue[n].payload)
			n++
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()
		c.commit(batch)
	}
}

// commit applies one batch and hands each publish its outcome.
func (c *committer) commit(batch []*publishReq) {
	fail := func(err error) {
		for _, r := range batch {
			r.done <- publishOutcome{err: err}
		}
	}
	if len(batch) == 1 {
		applied, err := c.apply(c.ctx, opAppend, batch[0].payload)
		if err != nil {
			fail(err)
			return
		}
		res, err := decodeResult(applied.Result)
		batch[0].done <- publishOutcome{res: res, index: applied.Index, err: err}
		return
	}
	payloads := make([][]byte, len(batch))
	for i, r := range batch {
		payloads[i] = r.payload
	}
	applied, err := c.apply(c.ctx, opAppendGroups, encodeGroups(payloads))
	if err != nil {
		fail(err)
		return
	}
	results, err := decodeGroups(applied.Result, len(batch))
	if err != nil {
		fail(fmt.Errorf("group commit at raft index %d: %w", applied.Index, err))
		return
	}
	for i, r := range batch {
		res, err := decodeResult(results[i])
		r.done <- publishOutcome{res: res, index: applied.Index, err: err}
	}
}

// stop refuses new publishes, aborts the commands in flight and waits for
// the flushers, bounded by ctx.
func (c *committer) stop(ctx context.Context) error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cancel()
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop log committer: %w", ctx.Err())
	}
}

// The opAppendGroups payload is a uvarint count, then count length-prefixed
// opAppend payloads. Its result is a uvarint count, then count
// length-prefixed opAppend results, in the same order.

func encodeGroups(parts [][]byte) []byte {
	size := binary.MaxVarintLen64
	for _, p := range parts {
		size += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, p := range parts {
		b = appendBytes(b, p)
	}
	return b
}

// decodeGroups splits an opAppendGroups payload or result. want is the
// expected count, or 0 for any count from 1 to maxGroups. The parts alias b.
func decodeGroups(b []byte, want int) ([][]byte, error) {
	d := decoder{b: b}
	count := d.uvarint()
	if d.err == nil && (count == 0 || count > maxGroups || (want > 0 && count != uint64(want))) {
		d.fail("%d groups", count)
	}
	var parts [][]byte
	for i := uint64(0); i < count && d.err == nil; i++ {
		parts = append(parts, d.bytes(len(d.b)))
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode groups: %w", d.err)
	}
	return parts, nil
}
