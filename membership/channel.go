package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// MaxBroadcastSize is the largest Broadcast frame, tag byte included. It
// stays below memberlist's 1400-byte UDP packet with room for the compound
// message framing and memberlist's own messages, so every queued broadcast
// can be sent.
const MaxBroadcastSize = 1200

// maxQueuedPerChannel bounds a channel's broadcast queue. Beyond it, the
// broadcasts that were retransmitted most are dropped first (memberlist's
// Prune), so a module that broadcasts faster than gossip drains cannot
// exhaust memory.
const maxQueuedPerChannel = 1024

// Handler receives the messages of one channel.
type Handler interface {
	// NotifyMsg is called with the payload (tag removed) of a message that
	// another node sent on this channel with Broadcast or SendTo. It is
	// called from memberlist's goroutines, possibly concurrently, and must
	// not block. msg is only valid during the call: copy what you keep.
	NotifyMsg(msg []byte)
}

// StateHandler is a Handler that also takes part in memberlist's push/pull
// state exchange: periodically (Timing.PushPullInterval) and when a node
// joins, two nodes swap their LocalState.
type StateHandler interface {
	Handler
	// LocalState returns this node's state for a peer; join is true during
	// a join. It is called from memberlist's goroutines, concurrently with
	// NotifyMsg and MergeRemoteState, and must not block for long. The
	// returned slice is not modified by this package.
	LocalState(join bool) []byte
	// MergeRemoteState merges a peer's LocalState for this channel (and
	// only this channel). It must not block for long; buf is only valid
	// during the call.
	MergeRemoteState(buf []byte, join bool)
}

// Channel is one module's namespace on the gossip layer, identified by a
// tag byte. A module's messages only reach the same channel on other nodes.
// Its methods are safe for concurrent use.
type Channel struct {
	m       *Membership
	tag     byte
	queue   *memberlist.TransmitLimitedQueue // Broadcast's
	spread  *memberlist.TransmitLimitedQueue // Spread's: fewer retransmissions
	handler atomic.Pointer[handlerRef]
}

type handlerRef struct {
	h     Handler
	state StateHandler // nil unless h implements StateHandler
}

// Channel returns the channel for tag, creating it on first use; later calls
// with the same tag return the same Channel. Tag 0 is reserved by this
// package (see the package documentation): Channel panics on it, as on any
// programming error that must fail at start.
func (m *Membership) Channel(tag byte) *Channel {
	if tag == 0 {
		panic("membership: Channel(0): tag 0 is reserved")
	}
	m.chMu.Lock()
	defer m.chMu.Unlock()
	if c := m.chans[tag].Load(); c != nil {
		return c
	}
	c := &Channel{m: m, tag: tag}
	c.queue = m.newQueue(m.cfg.RetransmitMult)
	c.spread = m.newQueue(spreadRetransmitMult(m.cfg.RetransmitMult))
	list := append(slices.Clone(*m.chanList.Load()), c)
	slices.SortFunc(list, func(a, b *Channel) int { return int(a.tag) - int(b.tag) })
	m.chanList.Store(&list)
	m.chans[tag].Store(c)
	return c
}

// newQueue returns a broadcast queue that retransmits each message
// mult*ceil(log10(N+1)) times, holding its sentinel.
func (m *Membership) newQueue(mult int) *memberlist.TransmitLimitedQueue {
	q := &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return max(1, m.NumAlive()) },
		RetransmitMult: mult,
	}
	q.QueueBroadcast(&sentinelBroadcast{})
	return q
}

// spreadRetransmitMult is the retransmit multiplier of spread messages:
// a quarter of Broadcast's, at least 1. The pushes already reached fanout
// members at once, and each of them pushed on; the piggybacked copies only
// have to find the few members that every push missed. (With half, the
// kv benchmark sent 1.06x Serf's bytes at 16 agents.)
func spreadRetransmitMult(mult int) int { return max(1, mult/4) }

// Tag returns the channel's tag.
func (c *Channel) Tag() byte { return c.tag }

// SetHandler sets the handler of this channel's incoming messages (and, if
// h is a StateHandler, of its push/pull state). It may be called once,
// before or after traffic starts; until then incoming messages are dropped
// and counted in shoal_membership_messages_dropped_total. It panics if h is
// nil or a handler is already set.
func (c *Channel) SetHandler(h Handler) {
	if h == nil {
		panic(fmt.Sprintf("membership: SetHandler(nil) on channel %d", c.tag))
	}
	ref := &handlerRef{h: h}
	ref.state, _ = h.(StateHandler)
	if !c.handler.CompareAndSwap(nil, ref) {
		panic(fmt.Sprintf("membership: SetHandler called twice on channel %d", c.tag))
	}
}

// Broadcast queues msg to be piggybacked on gossip to every member; it
// returns at once. Each broadcast is sent RetransmitMult*ceil(log10(N+1))
// times to random members, so delivery is best effort: a member usually
// receives it, possibly more than once, and a member that is unreachable
// for the whole retransmission window misses it (use push/pull state to
// converge). If key is not empty, it replaces a broadcast of this channel
// with the same key that is still queued. msg is copied. A frame (tag
// byte plus msg) larger than MaxBroadcastSize is refused with
// ErrMessageTooLarge.
func (c *Channel) Broadcast(key string, msg []byte) error {
	if c.m.closing.Load() {
		return fmt.Errorf("broadcast on channel %d: %w", c.tag, ErrShutdown)
	}
	if 1+len(msg) > MaxBroadcastSize {
		return fmt.Errorf("broadcast on channel %d: %d-byte message, limit %d: %w",
			c.tag, len(msg), MaxBroadcastSize-1, ErrMessageTooLarge)
	}
	enqueue(c.queue, key, c.frame(msg))
	return nil
}

// Spread sends msg to every member like Broadcast, and sooner: it pushes
// msg at once, in a UDP packet, to fanout members picked at random among
// those up (this node excluded), and queues it to be piggybacked, with a
// quarter of Broadcast's retransmissions, for the members no push reached.
// A fanout of every member reaches each in one hop (kv's writers do that,
// up to 64 members). A module whose nodes spread on, with a smaller
// fanout, a message that is new to them gets an epidemic whose hops take a
// network round trip instead of a wait for the next gossip round; a member
// then misses every push with probability about e^-fanout and gets a
// piggybacked copy. Delivery stays best effort. key and the size limit are
// as for Broadcast; a push that cannot be sent is counted and left to the
// piggybacked copies. Pushes are bounded per gossip interval (see
// pushesPerInterval): past the bound, Spread is Broadcast.
func (c *Channel) Spread(key string, msg []byte, fanout int) error {
	if c.m.closing.Load() {
		return fmt.Errorf("spread on channel %d: %w", c.tag, ErrShutdown)
	}
	if 1+len(msg) > MaxBroadcastSize {
		return fmt.Errorf("spread on channel %d: %d-byte message, limit %d: %w",
			c.tag, len(msg), MaxBroadcastSize-1, ErrMessageTooLarge)
	}
	frame := c.frame(msg)
	if !c.m.push(frame, fanout) {
		// Over the push budget: a plain broadcast, retransmitted enough
		// to reach every member without pushes.
		enqueue(c.queue, key, frame)
		return nil
	}
	enqueue(c.spread, key, frame)
	return nil
}

// frame is msg behind the channel's tag, a broadcast frame.
func (c *Channel) frame(msg []byte) []byte {
	frame := make([]byte, 1+len(msg))
	frame[0] = c.tag
	copy(frame[1:], msg)
	return frame
}

// enqueue queues a broadcast frame, replacing one of the same key if key
// is not empty, and prunes the queue to its bound.
func enqueue(q *memberlist.TransmitLimitedQueue, key string, frame []byte) {
	if key != "" {
		q.QueueBroadcast(&namedBroadcast{msg: frame, name: key})
	} else {
		q.QueueBroadcast(&uniqueBroadcast{msg: frame})
	}
	if q.NumQueued()-1 > maxQueuedPerChannel {
		q.Prune(maxQueuedPerChannel + 1) // + the sentinel
	}
}

// queued is the number of broadcasts waiting in the channel's queues.
func (c *Channel) queued() int {
	// Each queue holds a sentinel, which is not a broadcast.
	return max(c.queue.NumQueued()-1, 0) + max(c.spread.NumQueued()-1, 0)
}

// SendTo sends msg to the member called node over a TCP stream; it blocks
// until the message is written, ctx is done or Timing.TCPTimeout passes.
// No error means the member's memberlist received it (its handler may
// still drop it). When ctx ends first, SendTo returns ctx's error while the
// send finishes in the background: the message may still arrive. The
// member must be known and alive or suspect (ErrUnknownNode, ErrNodeDown).
func (c *Channel) SendTo(ctx context.Context, node string, msg []byte) error {
	m := c.m
	to, frame, err := c.direct(node, msg)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send to %s on channel %d: %w", node, c.tag, err)
	}

	done := make(chan error, 1)
	m.sendMu.Lock()
	if m.sendsDone {
		m.sendMu.Unlock()
		return fmt.Errorf("send to %s on channel %d: %w", node, c.tag, ErrShutdown)
	}
	m.sends.Add(1)
	m.sendMu.Unlock()
	go func() {
		defer m.sends.Done()
		done <- m.ml.SendReliable(to, frame)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("send to %s on channel %d: %w", node, c.tag, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("send to %s on channel %d: %w", node, c.tag, ctx.Err())
	}
}

// SendBestEffort sends msg to the member called node in one UDP packet
// (memberlist's SendBestEffort), at once: no connection, no delivery
// guarantee. The receiver's handler gets it as it gets SendTo's. The
// member must be known and alive or suspect.
func (c *Channel) SendBestEffort(node string, msg []byte) error {
	to, frame, err := c.direct(node, msg)
	if err != nil {
		return err
	}
	if err := c.m.ml.SendBestEffort(to, frame); err != nil {
		return fmt.Errorf("send to %s on channel %d: %w", node, c.tag, err)
	}
	return nil
}

// direct resolves node for a direct message (known, alive or suspect) and
// frames msg for it: [directTag][tag][msg].
func (c *Channel) direct(node string, msg []byte) (*memberlist.Node, []byte, error) {
	m := c.m
	if err := m.usable(); errors.Is(err, ErrShutdown) {
		return nil, nil, fmt.Errorf("send to %s on channel %d: %w", node, c.tag, err)
	}
	mem, ok := m.Member(node)
	if !ok {
		return nil, nil, fmt.Errorf("send to %s on channel %d: %w", node, c.tag, ErrUnknownNode)
	}
	if !mem.Up() {
		return nil, nil, fmt.Errorf("send to %s on channel %d: member is %s: %w", node, c.tag, mem.Status, ErrNodeDown)
	}
	to, err := nodeAt(mem)
	if err != nil {
		return nil, nil, fmt.Errorf("send to %s on channel %d: %w", node, c.tag, err)
	}
	frame := make([]byte, 2+len(msg))
	frame[0], frame[1] = directTag, c.tag
	copy(frame[2:], msg)
	return to, frame, nil
}

// nodeAt is the memberlist node to address mem at.
func nodeAt(mem Member) (*memberlist.Node, error) {
	host, portStr, err := net.SplitHostPort(mem.Addr)
	if err != nil {
		return nil, fmt.Errorf("member address %q: %w", mem.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("member address %q: %w", mem.Addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("member address %q: host is not an IP address", mem.Addr)
	}
	return &memberlist.Node{Name: mem.Name, Addr: ip, Port: uint16(port)}, nil
}

// namedBroadcast replaces a queued broadcast of the same name (the queue is
// per channel, so names are too).
type namedBroadcast struct {
	msg  []byte
	name string
}

func (b *namedBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *namedBroadcast) Message() []byte                       { return b.msg }
func (b *namedBroadcast) Finished()                             {}
func (b *namedBroadcast) Name() string                          { return b.name }

// uniqueBroadcast never replaces another broadcast.
type uniqueBroadcast struct{ msg []byte }

func (b *uniqueBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *uniqueBroadcast) Message() []byte                       { return b.msg }
func (b *uniqueBroadcast) Finished()                             {}
func (b *uniqueBroadcast) UniqueBroadcast()                      {}

// sentinelBroadcast works around a bug of memberlist's queue
// (hashicorp/memberlist#263, unfixed in v0.5.4 and v0.7.0): when a keyed
// broadcast replaces the only queued one, the queue is briefly empty and
// resets its id counter, so the next broadcast of the same length can get
// the same id and silently overwrite it. Each channel's queue holds one
// sentinel from creation to Shutdown, so it is never empty. Its message is
// larger than any gossip packet, so it is never sent, never retransmitted
// and never the first to be pruned.
type sentinelBroadcast struct{}

// sentinelSize is larger than the payload room of any UDP gossip packet.
const sentinelSize = 1 << 16

func (sentinelBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (sentinelBroadcast) Message() []byte                       { return make([]byte, sentinelSize) }
func (sentinelBroadcast) Finished()                             {}
func (sentinelBroadcast) UniqueBroadcast()                      {}

var (
	_ memberlist.UniqueBroadcast = sentinelBroadcast{}
	_ memberlist.NamedBroadcast  = (*namedBroadcast)(nil)
	_ memberlist.UniqueBroadcast = (*uniqueBroadcast)(nil)
)
