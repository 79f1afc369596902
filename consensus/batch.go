package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"shoal/internal/wire"
)

// Writes that reach a follower travel to the leader in batches: every
// command that arrives while a batch is in flight joins the next one, so a
// busy follower pays one HTTP round trip for many writes, and the leader
// enqueues them back to back, where raft commits them with one disk write.
// Each command stays its own Raft entry: modules see the usual one index per
// command.

// Batch limits: how many commands, and roughly how many bytes, one
// forwarded batch carries (a single larger command travels alone).
const (
	maxBatchCommands = 1024
	maxBatchBytes    = 1 << 20
	// forwardsInFlight is how many batches a follower may have in flight to
	// the leader at once.
	forwardsInFlight = 2
)

// Outcome is the result of one command of a batch.
type Outcome struct {
	// Index is the command's Raft index; non-zero when it was committed,
	// also when Err is the module's (deterministic) error for it.
	Index  uint64
	Result []byte
	Err    error
}

// EncodeBatch frames commands for ForwardApply, in the primitives of
// internal/wire: a uvarint count, then each command as a uvarint length and
// its bytes.
func EncodeBatch(cmds [][]byte) []byte {
	size := binary.MaxVarintLen64
	for _, c := range cmds {
		size += binary.MaxVarintLen64 + len(c)
	}
	buf := make([]byte, 0, size)
	buf = wire.AppendUvarint(buf, uint64(len(cmds)))
	for _, c := range cmds {
		buf = wire.AppendBytes(buf, c)
	}
	return buf
}

// DecodeBatch is the inverse of EncodeBatch. The commands alias data. An
// error in the framing wraps wire.ErrMalformed.
func DecodeBatch(data []byte) ([][]byte, error) {
	d := wire.NewDecoder(data)
	count := d.Uvarint("command count")
	if d.Err() == nil && (count == 0 || count > maxBatchCommands) {
		d.Failf("command count", "%d commands; want 1 to %d", count, maxBatchCommands)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	cmds := make([][]byte, 0, count)
	for i := uint64(0); i < count; i++ {
		cmd := d.Bytes("command", d.Len())
		if err := d.Err(); err != nil {
			return nil, fmt.Errorf("decode batch: command %d: %w", i, err)
		}
		if _, _, _, err := DecodeCommand(cmd); err != nil {
			return nil, fmt.Errorf("decode batch: command %d: %w", i, err)
		}
		cmds = append(cmds, cmd)
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("decode batch: after the last command: %w", err)
	}
	return cmds, nil
}

// ErrorCodec carries a command's error from the leader to the follower
// that forwarded it. consensus treats the bytes as opaque: module errors
// carry what the API layer needs (a status, details), which consensus
// does not know. Decode fails on bytes Encode cannot have written.
type ErrorCodec struct {
	Encode func(error) []byte
	Decode func([]byte) (error, error)
}

// EncodeOutcomes frames the leader's answer, in the primitives of
// internal/wire: a uvarint count, then for each command its index, a kind
// byte (0 result, 1 error) and a length-prefixed result or error encoded
// by codec.
func EncodeOutcomes(outs []Outcome, codec ErrorCodec) []byte {
	buf := wire.AppendUvarint(nil, uint64(len(outs)))
	for _, o := range outs {
		buf = wire.AppendUvarint(buf, o.Index)
		payload := o.Result
		kind := byte(0)
		if o.Err != nil {
			kind = 1
			payload = codec.Encode(o.Err)
		}
		buf = append(buf, kind)
		buf = wire.AppendBytes(buf, payload)
	}
	return buf
}

// DecodeOutcomes is the inverse of EncodeOutcomes. Results alias data. An
// error in the framing wraps wire.ErrMalformed.
func DecodeOutcomes(data []byte, codec ErrorCodec) ([]Outcome, error) {
	d := wire.NewDecoder(data)
	count := d.Uvarint("outcome count")
	if d.Err() == nil && count > maxBatchCommands {
		d.Failf("outcome count", "%d outcomes exceeds %d", count, maxBatchCommands)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("decode outcomes: %w", err)
	}
	outs := make([]Outcome, 0, count)
	for i := uint64(0); i < count; i++ {
		var o Outcome
		o.Index = d.Uvarint("index")
		kind := d.Byte("kind")
		payload := d.Bytes("outcome", d.Len())
		if err := d.Err(); err != nil {
			return nil, fmt.Errorf("decode outcomes: outcome %d: %w", i, err)
		}
		switch kind {
		case 0:
			o.Result = payload
		case 1:
			e, err := codec.Decode(payload)
			if err != nil {
				return nil, fmt.Errorf("decode outcomes: error %d: %w", i, err)
			}
			o.Err = e
		default:
			return nil, fmt.Errorf("decode outcomes: unknown kind %d", kind)
		}
		outs = append(outs, o)
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("decode outcomes: after the last outcome: %w", err)
	}
	return outs, nil
}

// errLeaderChanged and errForwardTimeout are why a forwarded batch's
// request was cancelled.
var (
	errLeaderChanged  = errors.New("the leader changed")
	errForwardTimeout = errors.New("the apply timeout passed")
)

// forwardRequest is one follower write waiting to join a batch.
type forwardRequest struct {
	cmd  []byte
	done chan Outcome // buffered: the batcher never blocks on a caller
}

// runForwarder drains the forward queue into batches, with at most
// forwardsInFlight batches on the wire. It is owned by the Node and stops
// with it.
func (n *Node) runForwarder() {
	defer n.wg.Done()
	slots := make(chan struct{}, forwardsInFlight)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		var first *forwardRequest
		select {
		case first = <-n.forwardQ:
		case <-n.stop:
			return
		}
		select {
		case slots <- struct{}{}:
		case <-n.stop:
			first.done <- Outcome{Err: ErrShutdown}
			return
		}
		batch := []*forwardRequest{first}
		size := len(first.cmd)
	drain:
		for len(batch) < maxBatchCommands && size < maxBatchBytes {
			select {
			case r := <-n.forwardQ:
				batch = append(batch, r)
				size += len(r.cmd)
			default:
				break drain
			}
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			n.sendBatch(batch)
		}()
	}
}

// sendBatch forwards one batch to the current leader and hands each caller
// its outcome. A failure of the whole request is every caller's outcome.
func (n *Node) sendBatch(batch []*forwardRequest) {
	n.metrics.forwardBatch.Observe(float64(len(batch)))
	fail := func(err error) {
		for _, r := range batch {
			r.done <- Outcome{Err: err}
		}
	}
	// Take the change signal before reading the leader, so a change
	// between the two is not missed.
	changed := n.leaderChanged.wait()
	leaderID, _ := n.Leader()
	if leaderID == "" || leaderID == n.cfg.NodeID {
		fail(ErrNoLeader)
		return
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), n.cfg.ApplyTimeout, errForwardTimeout)
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	// A batch never waits on a leader this node no longer follows: once
	// another leader is known (or none), the request to the old one is
	// cancelled and its slot freed for writes to the new one.
	go func() {
		for {
			select {
			case <-n.stop:
				cancelCause(ErrShutdown)
				return
			case <-ctx.Done():
				return
			case <-changed:
				changed = n.leaderChanged.wait()
				if id, _ := n.Leader(); id != leaderID {
					cancelCause(errLeaderChanged)
					return
				}
			}
		}
	}()
	cmds := make([][]byte, len(batch))
	for i, r := range batch {
		cmds[i] = r.cmd
	}
	outs, err := n.forwarder.ForwardApply(ctx, leaderID, cmds)
	if err == nil && len(outs) != len(batch) {
		err = ErrOutcomeUnknown.WithMessage("the leader answered %d outcomes for %d writes", len(outs), len(batch))
	}
	if err != nil && errors.Is(context.Cause(ctx), errLeaderChanged) && errors.Is(err, ErrOutcomeUnknown) {
		n.metrics.forwardsAbandoned.Inc()
		err = ErrOutcomeUnknown.WithMessage("the leader changed while the write was with %s; its outcome is unknown: retry it (a publish with the same id is applied once)", leaderID)
	}
	if err != nil {
		fail(err)
		return
	}
	for i, r := range batch {
		r.done <- outs[i]
	}
}

// forward hands cmd to the batcher and waits for its outcome.
func (n *Node) forward(ctx context.Context, cmd []byte) Outcome {
	r := &forwardRequest{cmd: cmd, done: make(chan Outcome, 1)}
	select {
	case n.forwardQ <- r:
	case <-ctx.Done():
		return Outcome{Err: ErrTimeout}
	case <-n.stop:
		return Outcome{Err: ErrShutdown}
	}
	select {
	case o := <-r.done:
		return o
	case <-ctx.Done():
		return Outcome{Err: ErrOutcomeUnknown}
	case <-n.stop:
		return Outcome{Err: ErrOutcomeUnknown.WithMessage("this node stopped while the write was with the leader; its outcome is unknown")}
	}
}

// ApplyBatch applies commands forwarded by a follower; leader only. All
// commands are handed to raft before any is waited for, so raft writes
// them to its log together.
func (n *Node) ApplyBatch(ctx context.Context, cmds [][]byte) []Outcome {
	outs := make([]Outcome, len(cmds))
	if !n.IsLeader() {
		for i := range outs {
			outs[i].Err = ErrNotLeader
		}
		return outs
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	start := time.Now()
	futures := make([]raft.ApplyFuture, len(cmds))
	for i, cmd := range cmds {
		if err := n.fsm.Check(cmd); err != nil {
			outs[i].Err = err // refused: never reaches the log
			continue
		}
		futures[i] = n.raft.Apply(cmd, timeout)
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		res, idx, err, _ := n.outcome(f)
		outs[i] = Outcome{Index: idx, Result: res, Err: err}
		n.metrics.observeApply("batch", start, err)
	}
	// The follower now waits to apply them itself: a prompt notice.
	if slices.ContainsFunc(futures, func(f raft.ApplyFuture) bool { return f != nil }) {
		n.followerWaits()
	}
	return outs
}
