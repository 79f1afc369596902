package objectsync

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"shoal/internal/ws"
	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

// wsSink is a websocket connection as a fan-out sink.
type wsSink struct{ c *ws.Conn }

func (s wsSink) send(f *frame) error    { return wsErr(s.c.Send(f.b)) }
func (s wsSink) replace(f *frame) error { return wsErr(s.c.Replace(f.b)) }
func (s wsSink) queued() int            { return s.c.Queued() }

func wsErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ws.ErrQueueFull):
		return errFull
	default:
		return errClosed
	}
}

// writeQueue is how many writes (master, set, patch, release, produced)
// may wait on one connection; writeQueueBytes bounds their size (at least
// four objects of the largest size). Beyond either the write is refused
// at once with "overloaded": the reader never waits for room, because it
// also reads the pongs, and a backlog ahead of a pong would get a healthy
// but busy connection dropped as dead.
const (
	writeQueue      = 1024
	writeQueueBytes = 16 << 20
)

// typeResolve is the worker's own message (never a client's): after a
// read barrier, resolve the subscriptions with have_version or
// have_versions to the ids in its Patterns field.
const typeResolve = "\x00resolve"

// workItem is a write waiting for the worker, with the refs of the sets
// it superseded (see next).
type workItem struct {
	m    protocol.Message
	refs []string
}

func messageSize(m protocol.Message) int {
	return len(m.Object) + len(m.Patch) + len(m.Version) + len(m.From) + len(m.To) + len(m.ID) + 64
}

// wsClient is one websocket connection. Its reader goroutine (onMessage)
// answers subscriptions from local state at once and hands writes, in
// order, to the connection's worker goroutine, which waits for Raft.
type wsClient struct {
	o     *ObjectSync
	sess  *session // set by the first message
	conn  *ws.Conn
	owner string

	workMu     sync.Mutex
	work       []workItem // writes for the worker, in order
	workBytes  int
	workClosed bool            // set by onClose: the worker returns
	workWake   chan struct{}   // one token: work arrived or closed
	workerDone chan struct{}   // closed when the worker returns; nil until it starts
	claims     map[string]bool // the worker's; read by onClose's release after it returned

	prodMu       sync.Mutex
	prodPatterns []string // what this connection produces, if it registered
}

// handleWS upgrades GET /v1/objects/ws. Authentication is the API's (the
// bearer token in the Authorization header).
func (o *ObjectSync) handleWS(w http.ResponseWriter, r *http.Request) error {
	if o.hub == nil {
		return ErrShuttingDown
	}
	c := &wsClient{o: o, claims: map[string]bool{}}
	_, err := o.hub.Accept(w, r, ws.AcceptOptions{OnMessage: c.onMessage, OnClose: c.onClose})
	_ = err // Accept answered the failure itself
	return nil
}

// start binds the client to its connection, on its first message.
func (c *wsClient) start(conn *ws.Conn) {
	c.conn = conn
	c.owner = c.o.owner(conn.ID()) // the same number names it as a producer
	c.sess = c.o.fo.open(wsSink{conn}, c.o.cfg.SendQueue)
}

func (c *wsClient) onMessage(ctx context.Context, conn *ws.Conn, msg []byte) error {
	if c.sess == nil {
		c.start(conn)
	}
	m, err := protocol.DecodeClient(msg)
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			c.o.fo.sendError(c.sess, pe.Code, pe.Message, pe.Ref)
		}
		return nil
	}
	switch m.Type {
	case protocol.TypeSubscribe:
		have := ""
		if m.HaveVersion != nil {
			v, err := parseVersion(m.HaveVersion, "have_version")
			if err != nil {
				c.fail(err, m.Ref)
				return nil
			}
			have = v.String()
		}
		haves := map[string]string{}
		for id, raw := range m.HaveVersions {
			v, err := parseVersion(raw, "have_versions")
			if err != nil {
				c.fail(err, m.Ref)
				return nil
			}
			haves[id] = v.String()
		}
		key, pattern := m.ID, false
		if m.Pattern != "" {
			key, pattern = m.Pattern, document.IsPattern(m.Pattern)
			if !pattern && haves[key] != "" {
				have = haves[key] // a pattern without '*' is its one id
			}
		}
		resolve, err := c.o.fo.subscribe(c.sess, key, pattern, have, haves, c.o.cfg.MaxSubscriptions)
		if err != nil {
			if !errors.Is(err, errClosed) {
				c.fail(err, m.Ref)
			}
			return nil
		}
		if len(resolve) > 0 {
			// Answered once this node has caught up (see fanout.resolve).
			c.enqueue(ctx, protocol.Message{Type: typeResolve, Patterns: resolve, Ref: m.Ref})
		}
	case protocol.TypeUnsubscribe:
		key, pattern := m.ID, false
		if m.Pattern != "" {
			key, pattern = m.Pattern, document.IsPattern(m.Pattern)
		}
		c.o.fo.unsubscribe(c.sess, key, pattern)
	case protocol.TypeProduce:
		if err := c.registerProducer(m.Patterns); err != nil {
			c.fail(err, m.Ref)
		}
	default: // master, set, patch, release, produced, stall, failed
		c.enqueue(ctx, m)
	}
	return nil
}

func (c *wsClient) fail(err error, ref string) {
	code, msg := clientError(err)
	c.o.fo.sendError(c.sess, code, msg, ref)
}

// enqueue hands a write to the worker, starting it on the first write. It
// never blocks.
func (c *wsClient) enqueue(ctx context.Context, m protocol.Message) {
	size := messageSize(m)
	limit := max(writeQueueBytes, 4*c.o.cfg.MaxSize)
	c.workMu.Lock()
	if c.workerDone == nil {
		c.workWake = make(chan struct{}, 1)
		c.workerDone = make(chan struct{})
		go c.worker(ctx)
	}
	if len(c.work) >= writeQueue || c.workBytes+size > limit {
		n := len(c.work)
		c.workMu.Unlock()
		c.fail(ErrOverloaded.WithMessage("%d writes wait on this connection; wait for them to land before sending more", n), m.Ref)
		return
	}
	c.work = append(c.work, workItem{m: m})
	c.workBytes += size
	c.workMu.Unlock()
	signal(c.workWake)
}

// next takes the next write, waiting for one; ok is false once the
// connection closed.
//
// A set that a later set of the same object supersedes (with no other
// write of that object between them) is skipped: objectsync synchronises
// states, and a master that writes faster than Raft commits would
// otherwise fall further and further behind. The skipped set's ref goes
// with the later one, so a refusal of the later one is reported for both.
func (c *wsClient) next() (workItem, bool) {
	for {
		c.workMu.Lock()
		if c.workClosed {
			c.workMu.Unlock()
			return workItem{}, false
		}
		if len(c.work) > 0 {
			it := c.work[0]
			c.work[0] = workItem{}
			c.work = c.work[1:]
			c.workBytes -= messageSize(it.m)
			if later := c.supersededLocked(it.m); later >= 0 {
				c.work[later].refs = append(append(c.work[later].refs, it.refs...), it.m.Ref)
				c.o.m.writes.WithLabelValues("superseded").Inc()
				c.workMu.Unlock()
				continue
			}
			c.workMu.Unlock()
			return it, true
		}
		c.workMu.Unlock()
		<-c.workWake
	}
}

// supersededLocked returns the index in the queue of a set that
// supersedes m, a set, or -1. The caller holds workMu.
func (c *wsClient) supersededLocked(m protocol.Message) int {
	if m.Type != protocol.TypeSet {
		return -1
	}
	for i, it := range c.work {
		if it.m.ID != m.ID {
			continue
		}
		if it.m.Type == protocol.TypeSet {
			return i
		}
		return -1 // another write of the object comes first
	}
	return -1
}

// worker runs the connection's writes in order until onClose stops it.
// ctx is the connection's: it ends when the connection closes.
func (c *wsClient) worker(ctx context.Context) {
	defer close(c.workerDone)
	for {
		it, ok := c.next()
		if !ok {
			return
		}
		if err := c.write(ctx, it.m); err != nil && ctx.Err() == nil {
			c.fail(err, it.m.Ref)
			for _, ref := range it.refs {
				c.fail(err, ref)
			}
		}
	}
}

func (c *wsClient) write(ctx context.Context, m protocol.Message) error {
	o := c.o
	if m.Type == typeResolve {
		o.readBarrier(ctx)
		for _, id := range m.Patterns {
			o.fo.resolve(c.sess, id)
		}
		return nil
	}
	if err := checkID(m.ID); err != nil {
		return err
	}
	switch m.Type {
	case protocol.TypeProduced, protocol.TypeStall, protocol.TypeFailed:
		return c.produced(ctx, m)
	case protocol.TypeMaster:
		if c.claims[m.ID] {
			return nil
		}
		if err := o.claim(ctx, m.ID, c.owner); err != nil {
			return err
		}
		c.claims[m.ID] = true
	case protocol.TypeRelease:
		if !c.claims[m.ID] {
			return ErrNotMaster.WithMessage("this connection is not the master of %q", truncate(m.ID))
		}
		delete(c.claims, m.ID)
		return o.release(ctx, m.ID, c.owner)
	case protocol.TypeSet:
		if !c.claims[m.ID] {
			return ErrNotMaster.WithMessage("send {\"type\":\"master\",\"id\":%q} before writing it", truncate(m.ID))
		}
		ver, err := parseVersion(m.Version, "version")
		if err != nil {
			return err
		}
		_, err = o.set(ctx, m.ID, c.owner, ver, m.Object)
		return err
	case protocol.TypePatch:
		if !c.claims[m.ID] {
			return ErrNotMaster.WithMessage("send {\"type\":\"master\",\"id\":%q} before writing it", truncate(m.ID))
		}
		from, err := parseVersion(m.From, "from")
		if err != nil {
			return err
		}
		to, err := parseVersion(m.To, "to")
		if err != nil {
			return err
		}
		_, err = o.patch(ctx, m.ID, c.owner, from, to, m.Patch)
		return err
	}
	return nil
}

// onClose forgets the connection's subscriptions and, once its worker has
// stopped, releases its master claims in the background (bounded).
func (c *wsClient) onClose(*ws.Conn) {
	if c.sess == nil {
		return
	}
	c.o.prod.remove(c)
	c.o.fo.close(c.sess)
	c.workMu.Lock()
	started := c.workerDone != nil
	c.workClosed = true
	c.work = nil
	c.workMu.Unlock()
	if !started {
		return
	}
	signal(c.workWake)
	c.o.releases.Add(1)
	go func() {
		defer c.o.releases.Done()
		<-c.workerDone
		if len(c.claims) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for id := range c.claims {
			if err := c.o.release(ctx, id, c.owner); err != nil {
				c.o.logger.Debug("release a closed master's claim", "err", err)
				return // the leader drops it later if this node dies; the next run drops it at start
			}
		}
	}()
}
