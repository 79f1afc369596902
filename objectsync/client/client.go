package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

// Options configure a Client.
type Options struct {
	// Token is the API's bearer token, sent in the Authorization header.
	Token string
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts (defaults 50ms and 2s), jittered.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient dials the websocket (default http.DefaultClient).
	HTTPClient *http.Client
	// ErrorBuffer is how many error frames Errors holds before dropping
	// (default 256).
	ErrorBuffer int
}

// Error is an error frame from the server.
type Error struct {
	Code, Message, Ref string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrClosed is returned by the methods of a closed Client.
var ErrClosed = errors.New("objectsync client closed")

// ErrNotConnected: the client is between connections; the write was not
// sent (retrying is safe).
var ErrNotConnected = errors.New("objectsync client not connected")

// Stats count what the client saw.
type Stats struct {
	// Connects counts successful connections (1 + reconnections).
	Connects int
	// Objects and Patches count full states and patches applied.
	Objects, Patches int
	// Violations counts patches that did not start at the state held
	// (the state is dropped), and Regressions new states whose version
	// was older than the one held; both must stay 0.
	Violations, Regressions int
	// LastError is why the last connection ended ("" if none did).
	LastError string
}

// State is one object's state as the client holds it.
type State struct {
	Version string // canonical JSON
	Object  []byte // canonical JSON
}

// waiter is a SetWait waiting for version ver of object id, or a newer
// one (the server skips a set that a later set of the same master
// supersedes before it was submitted).
type waiter struct {
	id  string
	ver document.Version
	ch  chan error // room for one
}

// Client is a connection to an objectsync cluster. Its methods are safe
// for concurrent use.
type Client struct {
	urls []string
	opts Options

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	errs   chan Error

	mu     sync.Mutex
	conn   *websocket.Conn  // nil between connections
	states map[string]State // Object nil: not encoded since the last patch (see values)
	// values are the states' objects decoded: patches apply to them in
	// place (document.ApplyValue), and an object is encoded only when
	// read (objectLocked), not at every patch.
	values   map[string]any
	exact    map[string]bool
	patterns map[string]bool
	masters  map[string]bool
	producer *producer // nil until Produce
	stats    Stats
	waiters  map[string]*waiter // by ref: SetWait
	changed  chan struct{}      // closed and replaced on every change
	refs     uint64
	workers  sync.WaitGroup // producer callbacks in flight
}

// producer is what Produce registered.
type producer struct {
	patterns []string
	fn       ProduceFunc
}

// ProduceFunc builds object id on request. It returns its version and
// object (any JSON-encodable values, or json.RawMessage), or stall true
// (the version exists, the data is not ready: the server waits longer),
// or an error (the server asks again later, maybe another producer).
type ProduceFunc func(ctx context.Context, id string) (version, object any, stall bool, err error)

// Produce registers this client as a producer of patterns ('*' matches
// any run of characters), again after each reconnection: the cluster's
// leader asks it, through a produce message, to build an object someone
// subscribed to, and fn's answer is sent back. fn runs on a goroutine of
// its own per request; Close waits for those in flight.
func (c *Client) Produce(patterns []string, fn ProduceFunc) error {
	c.mu.Lock()
	c.producer = &producer{patterns: append([]string(nil), patterns...), fn: fn}
	c.mu.Unlock()
	return c.sendIgnoringDisconnect(protocol.Message{Type: protocol.TypeProduce, Patterns: patterns})
}

func (c *Client) produce(p *producer, id string) {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Minute)
	defer cancel()
	version, object, stall, err := p.fn(ctx, id)
	m := protocol.Message{ID: id, Ref: c.nextRef("produced")}
	var ver, obj json.RawMessage
	if err == nil {
		if ver, err = marshal(version); err == nil && !stall {
			obj, err = marshal(object)
		}
	}
	switch {
	case err != nil:
		m.Type = protocol.TypeFailed
	case stall:
		m.Type, m.Version = protocol.TypeStall, ver
	default:
		m.Type, m.Version, m.Object = protocol.TypeProduced, ver, obj
	}
	_ = c.send(m) // disconnected: the leader asks again
}

// Dial connects to the first of urls that answers (each a node's base URL,
// such as http://127.0.0.1:8080) and keeps a connection up until Close,
// moving to the next URL when one fails.
func Dial(ctx context.Context, urls []string, opts Options) (*Client, error) {
	if len(urls) == 0 {
		return nil, errors.New("objectsync client: no url")
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 50 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(2*time.Second, opts.MinBackoff)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.ErrorBuffer <= 0 {
		opts.ErrorBuffer = 256
	}
	c := &Client{
		urls: append([]string(nil), urls...), opts: opts, done: make(chan struct{}),
		errs: make(chan Error, opts.ErrorBuffer), states: map[string]State{}, values: map[string]any{}, exact: map[string]bool{},
		patterns: map[string]bool{}, masters: map[string]bool{}, waiters: map[string]*waiter{},
		changed: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, idx, err := c.dialAny(ctx, 0)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.attach(conn)
	go c.run(conn, idx)
	return c, nil
}

func wsURL(base string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return strings.TrimSuffix(base, "/") + "/v1/objects/ws"
}

// dialAny tries each URL once, starting at from.
func (c *Client) dialAny(ctx context.Context, from int) (*websocket.Conn, int, error) {
	var errs []error
	for i := range c.urls {
		idx := (from + i) % len(c.urls)
		h := http.Header{}
		if c.opts.Token != "" {
			h.Set("Authorization", "Bearer "+c.opts.Token)
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, _, err := websocket.Dial(dctx, wsURL(c.urls[idx]), &websocket.DialOptions{
			HTTPClient: c.opts.HTTPClient, HTTPHeader: h, Subprotocols: []string{protocol.BatchSubprotocol, protocol.Subprotocol},
		})
		cancel()
		if err == nil {
			conn.SetReadLimit(128 << 20)
			return conn, idx, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.urls[idx], err))
	}
	return nil, 0, fmt.Errorf("objectsync client: dial: %w", errors.Join(errs...))
}

// run keeps a connection until Close; conn, the first one, is attached.
func (c *Client) run(conn *websocket.Conn, idx int) {
	defer close(c.done)
	wait := c.opts.MinBackoff
	attached := true
	for {
		if conn != nil {
			if !attached {
				c.attach(conn)
			}
			attached = false
			c.read(conn)
			c.detach(conn)
			wait = c.opts.MinBackoff
			idx++
		}
		if c.ctx.Err() != nil {
			return
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/2 + 1))
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(wait/2 + jitter):
		}
		var err error
		conn, idx, err = c.dialAny(c.ctx, idx)
		if err != nil {
			conn = nil
			wait = min(2*wait, c.opts.MaxBackoff)
		}
	}
}

// reclaimAfter is how long a master waits to claim its id again after a
// reconnect found the claim still held.
const reclaimAfter = 500 * time.Millisecond

// attach makes conn current and re-sends what the client holds: master
// claims, then subscriptions (ids with have_version).
func (c *Client) attach(conn *websocket.Conn) {
	c.mu.Lock()
	c.conn = conn
	c.stats.Connects++
	var msgs []protocol.Message
	for id := range c.masters {
		msgs = append(msgs, protocol.Message{Type: protocol.TypeMaster, ID: id, Ref: "master:" + id})
	}
	// Each object held is resumed by a subscription that covers it: an
	// exact one with have_version, else the first pattern (in order) that
	// matches it, in its have_versions; one removed meanwhile comes back
	// as a removal. One that no subscription covers any more is
	// forgotten.
	patterns := slices.Sorted(maps.Keys(c.patterns))
	haves := map[string]map[string]json.RawMessage{}
	for id, st := range c.states {
		if c.exact[id] {
			continue
		}
		i := slices.IndexFunc(patterns, func(p string) bool {
			return document.Match(p, id) && len(haves[p]) < protocol.MaxHaveVersions
		})
		if i < 0 {
			c.forgetLocked(id)
			continue
		}
		if haves[patterns[i]] == nil {
			haves[patterns[i]] = map[string]json.RawMessage{}
		}
		haves[patterns[i]][id] = json.RawMessage(st.Version)
	}
	for id := range c.exact {
		m := protocol.Message{Type: protocol.TypeSubscribe, ID: id}
		if st, ok := c.states[id]; ok {
			m.HaveVersion = json.RawMessage(st.Version)
		}
		msgs = append(msgs, m)
	}
	for _, p := range patterns {
		msgs = append(msgs, protocol.Message{Type: protocol.TypeSubscribe, Pattern: p, HaveVersions: haves[p]})
	}
	if c.producer != nil {
		msgs = append(msgs, protocol.Message{Type: protocol.TypeProduce, Patterns: c.producer.patterns})
	}
	c.notifyLocked()
	c.mu.Unlock()
	for _, m := range msgs {
		if err := c.write(conn, m); err != nil {
			return
		}
	}
}

func (c *Client) detach(conn *websocket.Conn) {
	_ = conn.CloseNow()
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	for ref, w := range c.waiters {
		w.ch <- ErrNotConnected // room for one; removed at once
		delete(c.waiters, ref)
	}
	c.mu.Unlock()
}

func (c *Client) write(conn *websocket.Conn, m protocol.Message) error {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, protocol.Encode(m))
}

// send writes m on the current connection.
func (c *Client) send(m protocol.Message) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	if conn == nil {
		return ErrNotConnected
	}
	if err := c.write(conn, m); err != nil {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return nil
}

// read reads server messages until the connection fails.
func (c *Client) read(conn *websocket.Conn) {
	for {
		_, b, err := conn.Read(c.ctx)
		if err != nil {
			c.mu.Lock()
			c.stats.LastError = err.Error()
			c.mu.Unlock()
			return
		}
		c.handleFrame(b)
	}
}

// handleFrame handles the messages of one server frame. Under the batch
// subprotocol a frame may hold several, one per line; under the plain one
// it holds one, without a raw newline, so splitting is right for both.
func (c *Client) handleFrame(b []byte) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		var m protocol.Message
		if err := json.Unmarshal(line, &m); err != nil {
			continue
		}
		c.handle(m)
	}
}

func (c *Client) handle(m protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m.Type {
	case protocol.TypeObject:
		var v any
		ver, verr := document.ParseVersion(m.Version)
		if json.Unmarshal(m.Object, &v) != nil || verr != nil {
			return
		}
		obj, err := document.Encode(v)
		if err != nil {
			return
		}
		c.values[m.ID] = v
		c.replaceLocked(m.ID, State{Version: ver.String(), Object: obj})
		c.stats.Objects++
	case protocol.TypePatch:
		st, ok := c.states[m.ID]
		from, ferr := document.ParseVersion(m.From)
		to, terr := document.ParseVersion(m.To)
		if !ok || ferr != nil || terr != nil || st.Version != from.String() {
			c.stats.Violations++
			c.forgetLocked(m.ID)
			break
		}
		v, obj, err := c.patchLocked(m.ID, m.Patch)
		if err != nil {
			c.stats.Violations++
			c.forgetLocked(m.ID)
			break
		}
		c.values[m.ID] = v
		c.replaceLocked(m.ID, State{Version: to.String(), Object: obj})
		c.stats.Patches++
	case protocol.TypeRemoved:
		c.forgetLocked(m.ID)
	case protocol.TypeProduce:
		if p := c.producer; p != nil {
			c.workers.Add(1)
			go func() {
				defer c.workers.Done()
				c.produce(p, m.ID)
			}()
		}
	case protocol.TypeError:
		e := Error{Code: m.Code, Message: m.Message, Ref: m.Ref}
		if id, ok := strings.CutPrefix(m.Ref, "master:"); ok && m.Code == "conflict" && c.masters[id] && c.stats.Connects > 1 {
			// After a reconnect the claim may still be this client's
			// own, held for its old connection until that node
			// releases it (a restarted node releases its old claims
			// once its command commits): claim again shortly.
			c.workers.Add(1)
			go func() {
				defer c.workers.Done()
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(reclaimAfter):
				}
				c.mu.Lock()
				still := c.masters[id]
				c.mu.Unlock()
				if still {
					_ = c.sendIgnoringDisconnect(protocol.Message{Type: protocol.TypeMaster, ID: id, Ref: "master:" + id})
				}
			}()
		}
		if w := c.waiters[m.Ref]; w != nil {
			w.ch <- &e
			delete(c.waiters, m.Ref)
		}
		select {
		case c.errs <- e:
		default:
		}
	}
	c.notifyLocked()
}

// patchLocked applies patch to id's object: to the decoded value in
// place when document.ApplyValue takes the patch (the object's encoding
// is then made when read), else with document.Apply, as the servers do.
// The caller holds c.mu and checked the versions.
func (c *Client) patchLocked(id string, raw json.RawMessage) (any, []byte, error) {
	p, err := document.Patch(raw)
	if err != nil {
		return nil, nil, err
	}
	v, err := document.ApplyValue(c.values[id], p)
	if !errors.Is(err, document.ErrNotSimple) {
		return v, nil, err
	}
	obj, err := document.Apply(c.objectLocked(id), p, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(obj, &v); err != nil {
		return nil, nil, err
	}
	return v, obj, nil
}

// objectLocked returns id's object encoded, encoding it if a patch
// changed it since it was last read. The caller holds c.mu.
func (c *Client) objectLocked(id string) []byte {
	st := c.states[id]
	if st.Object == nil {
		obj, err := document.Encode(c.values[id])
		if err != nil {
			return nil // a decoded JSON value always encodes
		}
		st.Object = obj
		c.states[id] = st
	}
	return st.Object
}

// forgetLocked drops what the client holds of id. The caller holds c.mu.
func (c *Client) forgetLocked(id string) {
	delete(c.states, id)
	delete(c.values, id)
}

// replaceLocked installs a new state of id, counting a regression if its
// version is older than the one held. The caller holds c.mu.
func (c *Client) replaceLocked(id string, st State) {
	if old, ok := c.states[id]; ok {
		if cmp, ok := document.Compare(document.MustVersion(st.Version), document.MustVersion(old.Version)); ok && cmp < 0 {
			c.stats.Regressions++
		}
	}
	c.states[id] = st
	if len(c.waiters) == 0 {
		return
	}
	v := document.MustVersion(st.Version)
	for ref, w := range c.waiters {
		if w.id != id {
			continue
		}
		if cmp, ok := document.Compare(v, w.ver); ok && cmp >= 0 {
			w.ch <- nil
			delete(c.waiters, ref)
		}
	}
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of any state (or of
// the connection); call it again after each wake-up.
func (c *Client) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Errors returns the error frames the server sent (those beyond the
// buffer are dropped).
func (c *Client) Errors() <-chan Error { return c.errs }

// Subscribe follows an id or a pattern ('*' matches any run of
// characters) from now on, across reconnections.
func (c *Client) Subscribe(key string) error {
	m := protocol.Message{Type: protocol.TypeSubscribe}
	c.mu.Lock()
	if document.IsPattern(key) {
		c.patterns[key] = true
		m.Pattern = key
	} else {
		c.exact[key] = true
		m.ID = key
		if st, ok := c.states[key]; ok {
			m.HaveVersion = json.RawMessage(st.Version)
		}
	}
	c.mu.Unlock()
	return c.sendIgnoringDisconnect(m)
}

// Unsubscribe stops following an id or pattern.
func (c *Client) Unsubscribe(key string) error {
	m := protocol.Message{Type: protocol.TypeUnsubscribe}
	c.mu.Lock()
	if document.IsPattern(key) {
		delete(c.patterns, key)
		m.Pattern = key
	} else {
		delete(c.exact, key)
		m.ID = key
	}
	c.mu.Unlock()
	return c.sendIgnoringDisconnect(m)
}

// sendIgnoringDisconnect sends m, or leaves it to the next connection,
// which re-sends every subscription and claim.
func (c *Client) sendIgnoringDisconnect(m protocol.Message) error {
	if err := c.send(m); err != nil && !errors.Is(err, ErrNotConnected) {
		return err
	}
	return nil
}

// Get returns the state held for id.
func (c *Client) Get(id string) (State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.states[id]
	if ok {
		st.Object = c.objectLocked(id)
	}
	return st, ok
}

// States returns a copy of every state held.
func (c *Client) States() map[string]State {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]State, len(c.states))
	for k, v := range c.states {
		v.Object = c.objectLocked(k)
		out[k] = v
	}
	return out
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Master claims id (again after each reconnection) and subscribes to it,
// so that SetWait can see its writes land. A claim refused (another
// master holds it) arrives on Errors with ref "master:<id>".
func (c *Client) Master(id string) error {
	c.mu.Lock()
	c.masters[id] = true
	c.exact[id] = true
	c.mu.Unlock()
	if err := c.sendIgnoringDisconnect(protocol.Message{Type: protocol.TypeMaster, ID: id, Ref: "master:" + id}); err != nil {
		return err
	}
	return c.Subscribe(id)
}

// Release gives up the claim of id.
func (c *Client) Release(id string) error {
	c.mu.Lock()
	delete(c.masters, id)
	c.mu.Unlock()
	return c.send(protocol.Message{Type: protocol.TypeRelease, ID: id})
}

func (c *Client) nextRef(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs++
	return prefix + "#" + strconv.FormatUint(c.refs, 10)
}

func marshal(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return json.Marshal(v)
}

// Set sends the whole object at version (any JSON-encodable value, or
// json.RawMessage) without waiting.
func (c *Client) Set(id string, version, object any) error {
	ver, err := marshal(version)
	if err != nil {
		return err
	}
	obj, err := marshal(object)
	if err != nil {
		return err
	}
	return c.send(protocol.Message{Type: protocol.TypeSet, ID: id, Version: ver, Object: obj, Ref: c.nextRef("set")})
}

// SetWait sends the whole object at version and waits until this client
// holds that version of id or a newer one (the write was committed and
// came back, or a later set of this client superseded it), the
// server refused it (an *Error), the connection dropped (ErrNotConnected:
// the outcome is unknown) or ctx ended.
func (c *Client) SetWait(ctx context.Context, id string, version, object any) error {
	ver, err := marshal(version)
	if err != nil {
		return err
	}
	v, err := document.ParseVersion(ver)
	if err != nil {
		return err
	}
	obj, err := marshal(object)
	if err != nil {
		return err
	}
	ref := c.nextRef("set")
	w := &waiter{id: id, ver: v, ch: make(chan error, 1)}
	c.mu.Lock()
	c.waiters[ref] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, ref)
		c.mu.Unlock()
	}()
	if err := c.send(protocol.Message{Type: protocol.TypeSet, ID: id, Version: ver, Object: obj, Ref: ref}); err != nil {
		return err
	}
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// Patch sends an RFC 6902 patch from version from to version to.
func (c *Client) Patch(id string, from, to any, patch json.RawMessage) error {
	f, err := marshal(from)
	if err != nil {
		return err
	}
	t, err := marshal(to)
	if err != nil {
		return err
	}
	return c.send(protocol.Message{Type: protocol.TypePatch, ID: id, From: f, To: t, Patch: patch, Ref: c.nextRef("patch")})
}

// SendRaw sends a raw text frame (tests of the server's input checks).
func (c *Client) SendRaw(frame []byte) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, frame)
}

// Close closes the connection and stops reconnecting; it waits for the
// client's goroutine.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}
	<-c.done
	c.workers.Wait()
	return nil
}
