package membership

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// directTag starts a SendTo frame: [directTag][tag][payload]. It is tag 0,
// which no channel may use.
const directTag = 0

// delegate is memberlist's Delegate. memberlist calls it from its own
// goroutines, concurrently; nothing in it blocks except the handlers, which
// are documented as non-blocking. It holds gate's read lock while calling a
// handler, so that after Shutdown no handler is called.
type delegate struct{ m *Membership }

var _ memberlist.Delegate = delegate{}

// NodeMeta returns the encoded local Meta; its size was checked against
// MetaMaxSize (the only limit memberlist passes) when it was set.
func (d delegate) NodeMeta(limit int) []byte {
	buf := *d.m.metaBytes.Load()
	if len(buf) > limit {
		d.m.logger.Error("node meta exceeds memberlist's limit, advertising none", "bytes", len(buf), "limit", limit)
		return nil
	}
	return buf
}

// NotifyMsg dispatches a user message by its tag. memberlist may reuse buf
// after the call; no handler may keep it (Handler's contract), and nothing
// here does, so it is passed on without a copy.
func (d delegate) NotifyMsg(buf []byte) {
	m := d.m
	kind := kindBroadcast
	if len(buf) > 0 && buf[0] == directTag {
		kind = kindDirect
		buf = buf[1:]
	}
	if len(buf) == 0 {
		m.metrics.dropped.WithLabelValues(dropMalformed).Inc()
		m.logger.Debug("dropping empty gossip message", "kind", kind)
		return
	}
	tag, payload := buf[0], buf[1:]

	m.gate.RLock()
	defer m.gate.RUnlock()
	if m.stopped {
		return
	}
	ref := m.handler(tag)
	if ref == nil {
		m.metrics.dropped.WithLabelValues(dropNoHandler).Inc()
		m.logger.Debug("dropping gossip message for a channel without handler", "tag", tag, "kind", kind)
		return
	}
	m.metrics.received.WithLabelValues(kind).Inc()
	ref.h.NotifyMsg(payload)
}

// GetBroadcasts collects queued broadcasts of every channel up to limit
// bytes. The channel that picks first rotates on each call, so a busy
// channel cannot starve the others.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	chans := *d.m.chanList.Load()
	if len(chans) == 0 {
		return nil
	}
	start := int(d.m.rotate.Add(1) % uint32(len(chans)))
	var out [][]byte
	used := 0
	for i := range chans {
		c := chans[(start+i)%len(chans)]
		for _, q := range [...]*memberlist.TransmitLimitedQueue{c.spread, c.queue} {
			for _, msg := range q.GetBroadcasts(overhead, limit-used) {
				used += overhead + len(msg)
				out = append(out, msg)
			}
			if limit-used <= overhead {
				return out
			}
		}
	}
	return out
}

// LocalState concatenates the state frames of every channel whose handler
// is a StateHandler, in tag order.
func (d delegate) LocalState(join bool) []byte {
	m := d.m
	m.gate.RLock()
	defer m.gate.RUnlock()
	if m.stopped {
		return nil
	}
	var buf []byte
	for _, c := range *m.chanList.Load() {
		ref := c.handler.Load()
		if ref == nil || ref.state == nil {
			continue
		}
		buf = appendStateFrame(buf, c.tag, ref.state.LocalState(join))
	}
	return buf
}

// MergeRemoteState splits a peer's LocalState into frames and hands each to
// its channel's StateHandler. A malformed buffer is rejected as a whole
// before any handler sees it; a frame for a channel without StateHandler is
// skipped.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	m := d.m
	frames, err := decodeStateFrames(buf)
	if err != nil {
		m.metrics.dropped.WithLabelValues(dropMalformed).Inc()
		m.logger.Warn("rejecting malformed push/pull state", "bytes", len(buf), "error", err)
		return
	}
	m.gate.RLock()
	defer m.gate.RUnlock()
	if m.stopped {
		return
	}
	for _, f := range frames {
		ref := m.handler(f.tag)
		if ref == nil || ref.state == nil {
			m.metrics.dropped.WithLabelValues(dropNoHandler).Inc()
			m.logger.Debug("skipping push/pull state for a channel without state handler", "tag", f.tag, "bytes", len(f.data))
			continue
		}
		m.metrics.received.WithLabelValues(kindState).Inc()
		ref.state.MergeRemoteState(f.data, join)
	}
}

// handler returns the handler of the channel tagged tag, or nil.
func (m *Membership) handler(tag byte) *handlerRef {
	c := m.chans[tag].Load()
	if c == nil {
		return nil
	}
	return c.handler.Load()
}

// stateFrame is one channel's part of the push/pull state.
type stateFrame struct {
	tag  byte
	data []byte // aliases the decoded buffer
}

var errTruncated = errors.New("truncated frame")

// appendStateFrame appends [tag][uvarint len(data)][data] to buf.
func appendStateFrame(buf []byte, tag byte, data []byte) []byte {
	buf = append(buf, tag)
	buf = binary.AppendUvarint(buf, uint64(len(data)))
	return append(buf, data...)
}

// decodeStateFrames splits what appendStateFrame produced. It never panics:
// a truncated or oversized frame is an error.
func decodeStateFrames(buf []byte) ([]stateFrame, error) {
	var frames []stateFrame
	for off := 0; off < len(buf); {
		tag := buf[off]
		off++
		n, k := binary.Uvarint(buf[off:])
		switch {
		case k == 0:
			return nil, fmt.Errorf("frame %d (tag %d) at byte %d: length: %w", len(frames), tag, off, errTruncated)
		case k < 0:
			return nil, fmt.Errorf("frame %d (tag %d) at byte %d: length overflows", len(frames), tag, off)
		}
		off += k
		if n > uint64(len(buf)-off) {
			return nil, fmt.Errorf("frame %d (tag %d) at byte %d: %d bytes announced, %d left: %w",
				len(frames), tag, off, n, len(buf)-off, errTruncated)
		}
		end := off + int(n)
		frames = append(frames, stateFrame{tag: tag, data: buf[off:end:end]})
		off = end
	}
	return frames, nil
}
