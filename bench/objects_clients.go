package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	centrifugego "github.com/centrifugal/centrifuge-go"
	"github.com/coder/websocket"

	osclient "shoal/objectsync/client"
)

// objSystem is one of the objects scenario's contenders: how to open
// idle and live subscribers on it and how to feed it as the master.
type objSystem interface {
	name() string
	pids() []int
	// openIdle opens n connections each following an object or channel
	// that never changes; close them with the returned function.
	openIdle(ctx context.Context, n int) (func(), error)
	// masterTarget is what objects-master is given: -system and -addr.
	masterTarget() (system, addr string)
	// openSubs opens n subscribers of the changing object, each recording
	// what it applies in rec, and returns once all are subscribed.
	openSubs(ctx context.Context, n int, rec *objRecorder) (objSubs, error)
	// openReaders opens n readers of the changing object
	// (objects_readers.go), counting the bytes they read in wire.
	openReaders(ctx context.Context, n int, wire *atomic.Int64) (objSubs, error)
}

type objMaster interface {
	send(obj []byte) error
	close()
}

type objSubs interface {
	// deliveries is how many updates the subscribers applied so far.
	deliveries() int64
	close()
}

// objRecorder collects, while measuring is set, the latency of each state
// a subscriber applies (from the send time embedded in the object) and
// counts the bytes read on the subscribers' connections.
type objRecorder struct {
	measuring atomic.Bool
	applied   atomic.Int64 // deliveries counted by record (all systems)
	wire      atomic.Int64 // bytes read on the live subscribers' connections
	mu        sync.Mutex
	shards    []*objShard
}

// objShard holds one subscriber's latency samples, in microseconds.
type objShard struct {
	mu  sync.Mutex
	lat []int32
}

func (r *objRecorder) shard() *objShard {
	s := &objShard{}
	r.mu.Lock()
	r.shards = append(r.shards, s)
	r.mu.Unlock()
	return s
}

// record notes that a subscriber applied obj now.
func (r *objRecorder) record(s *objShard, obj []byte) {
	r.applied.Add(1)
	if !r.measuring.Load() {
		return
	}
	sent, ok := objSentMicros(obj)
	if !ok {
		return
	}
	d := time.Now().UnixMicro() - sent
	s.mu.Lock()
	s.lat = append(s.lat, int32(min(d, 1<<31-1)))
	s.mu.Unlock()
}

// latencies returns every sample, sorted.
func (r *objRecorder) latencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []time.Duration
	for _, s := range r.shards {
		s.mu.Lock()
		for _, v := range s.lat {
			all = append(all, time.Duration(v)*time.Microsecond)
		}
		s.mu.Unlock()
	}
	return all
}

// objSentField is the field of the object that the master changes: its
// send time in microseconds since the epoch (below 2^53, so exact as the
// IEEE double objectsync's canonical JSON keeps). It sorts after every
// other key, so it is the object's last member.
const objSentField = `"sent_us":`

func objSentMicros(obj []byte) (int64, bool) {
	i := bytes.LastIndex(obj, []byte(objSentField))
	if i < 0 {
		return 0, false
	}
	b := obj[i+len(objSentField):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return v, err == nil
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func countingDial(n *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, n: n}, nil
	}
}

// countingHTTP is an HTTP client (no proxy: every address is a loopback
// one the scenario picked) whose connections count the bytes read into n.
func countingHTTP(n *atomic.Int64) *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: countingDial(n)}}
}

// parallel runs f(0..n-1) on up to width goroutines and returns the
// first error.
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(n, width) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v", what, timeout)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// ---- objectsync ----

// objectsyncSystem is the shoal cluster: subscriber i connects to node
// i mod 3 through the objectsync Go client; the master connects to n1.
type objectsyncSystem struct {
	cluster *shoalCluster
}

const objectsyncHotID, objectsyncIdleID = "bench-object", "bench-idle"

func (s *objectsyncSystem) name() string { return "objectsync" }
func (s *objectsyncSystem) pids() []int  { return pidsOf(shoalProcs(s.cluster)) }

func (s *objectsyncSystem) url(i int) string {
	return "http://" + s.cluster.nodes[i%len(s.cluster.nodes)].httpAddr
}

func (s *objectsyncSystem) dialN(ctx context.Context, n int, wire *atomic.Int64, each func(i int, c *osclient.Client) error) ([]*osclient.Client, error) {
	cs := make([]*osclient.Client, n)
	hc := countingHTTP(wire)
	err := parallel(ctx, n, 16, func(i int) error {
		// A loaded node may take more than the client's 5 s to answer
		// an upgrade: try three times.
		var c *osclient.Client
		var err error
		for range 3 {
			if c, err = osclient.Dial(ctx, []string{s.url(i)}, osclient.Options{HTTPClient: hc}); err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
		cs[i] = c
		return each(i, c)
	})
	if err != nil {
		closeObjectsync(cs)
		return nil, err
	}
	return cs, nil
}

func closeObjectsync(cs []*osclient.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Go(func() { _ = c.Close() })
		}
	}
	wg.Wait()
}

func (s *objectsyncSystem) openIdle(ctx context.Context, n int) (func(), error) {
	var wire atomic.Int64
	cs, err := s.dialN(ctx, n, &wire, func(_ int, c *osclient.Client) error { return c.Subscribe(objectsyncIdleID) })
	if err != nil {
		return nil, err
	}
	return func() { closeObjectsync(cs) }, nil
}

type objectsyncMaster struct {
	c       *osclient.Client
	version int64
}

func (s *objectsyncSystem) masterTarget() (string, string) {
	return "objectsync", s.cluster.nodes[0].httpAddr
}

// dialObjectsyncMaster claims the object as its master on the node at
// url and installs obj as its first state.
func dialObjectsyncMaster(ctx context.Context, url string, obj []byte) (objMaster, error) {
	c, err := osclient.Dial(ctx, []string{url}, osclient.Options{})
	if err != nil {
		return nil, err
	}
	if err := c.Master(objectsyncHotID); err != nil {
		_ = c.Close()
		return nil, err
	}
	m := &objectsyncMaster{c: c, version: time.Now().UnixMilli()} // grows across runs on one cluster
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.SetWait(wctx, objectsyncHotID, m.version, rawJSON(obj)); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("objectsync master: first set: %w", err)
	}
	return m, nil
}

func (m *objectsyncMaster) send(obj []byte) error {
	m.version++
	return m.c.Set(objectsyncHotID, m.version, rawJSON(obj))
}

func (m *objectsyncMaster) close() { _ = m.c.Close() }

type objectsyncSubs struct {
	cs   []*osclient.Client
	stop chan struct{}
	wg   sync.WaitGroup
}

func (s *objectsyncSystem) openSubs(ctx context.Context, n int, rec *objRecorder) (objSubs, error) {
	cs, err := s.dialN(ctx, n, &rec.wire, func(_ int, c *osclient.Client) error { return c.Subscribe(objectsyncHotID) })
	if err != nil {
		return nil, err
	}
	subs := &objectsyncSubs{cs: cs, stop: make(chan struct{})}
	// A watcher per subscriber takes the state the client holds at each
	// change: the latency is that of the state it sees, the deliveries are
	// the client's own count of applied objects and patches.
	for _, c := range cs {
		sh := rec.shard()
		subs.wg.Go(func() {
			last := ""
			for {
				ch := c.Changed()
				if st, ok := c.Get(objectsyncHotID); ok && st.Version != last {
					last = st.Version
					if rec.measuring.Load() {
						rec.recordSample(sh, st.Object)
					}
				}
				select {
				case <-ch:
				case <-subs.stop:
					return
				}
			}
		})
	}
	err = waitFor(ctx, 30*time.Second, "objectsync subscribers have the object", func() bool {
		for _, c := range cs {
			if _, ok := c.Get(objectsyncHotID); !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		subs.close()
		return nil, err
	}
	return subs, nil
}

func (s *objectsyncSubs) deliveries() int64 {
	var n int64
	for _, c := range s.cs {
		st := c.Stats()
		n += int64(st.Objects + st.Patches)
	}
	return n
}

func (s *objectsyncSubs) close() {
	close(s.stop)
	s.wg.Wait()
	closeObjectsync(s.cs)
}

// recordSample is record without the delivery count (objectsync counts
// deliveries from the clients' statistics).
func (r *objRecorder) recordSample(s *objShard, obj []byte) {
	sent, ok := objSentMicros(obj)
	if !ok {
		return
	}
	d := time.Now().UnixMicro() - sent
	s.mu.Lock()
	s.lat = append(s.lat, int32(min(d, 1<<31-1)))
	s.mu.Unlock()
}

// rawJSON hands already encoded JSON to the objectsync client.
func rawJSON(b []byte) any { return json.RawMessage(b) }

// ---- masters over a plain websocket (centrifuge and baseline) ----

// wsMaster sends each full object as one text frame to a peer's /publish.
type wsMaster struct {
	conn *websocket.Conn
}

func dialWSMaster(ctx context.Context, addr string, obj []byte) (*wsMaster, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws://"+addr+"/publish", &websocket.DialOptions{HTTPClient: countingHTTP(new(atomic.Int64))})
	if err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	m := &wsMaster{conn: conn}
	if err := m.send(obj); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

func (m *wsMaster) send(obj []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.conn.Write(ctx, websocket.MessageText, obj)
}

func (m *wsMaster) close() { _ = m.conn.Close(websocket.StatusNormalClosure, "") }

// ---- centrifuge ----

// centrifugeSystem is the centrifuge server process; subscribers are
// centrifuge-go clients that negotiate fossil delta on the changing
// channel.
type centrifugeSystem struct {
	addr     string
	proc     *proc
	protobuf bool
}

func (s *centrifugeSystem) name() string { return "centrifuge" }
func (s *centrifugeSystem) pids() []int  { return pidsOf([]*proc{s.proc}) }

type centrifugeSubs struct {
	cs  []*centrifugego.Client
	rec *objRecorder
}

func (s *centrifugeSystem) dialN(ctx context.Context, n int, wire *atomic.Int64, channel string, delta bool, rec *objRecorder) (*centrifugeSubs, error) {
	subs := &centrifugeSubs{cs: make([]*centrifugego.Client, n), rec: rec}
	var subscribed atomic.Int64
	var failed atomic.Pointer[error]
	url := "ws://" + s.addr + "/connection/websocket"
	err := parallel(ctx, n, 16, func(i int) error {
		cfg := centrifugego.Config{NetDialContext: countingDial(wire)}
		var c *centrifugego.Client
		if s.protobuf {
			c = centrifugego.NewProtobufClient(url, cfg)
		} else {
			c = centrifugego.NewJsonClient(url, cfg)
		}
		subs.cs[i] = c
		sc := centrifugego.SubscriptionConfig{}
		if delta {
			sc.Delta = centrifugego.DeltaTypeFossil
		}
		sub, err := c.NewSubscription(channel, sc)
		if err != nil {
			return err
		}
		sub.OnSubscribed(func(centrifugego.SubscribedEvent) { subscribed.Add(1) })
		sub.OnError(func(e centrifugego.SubscriptionErrorEvent) { failed.CompareAndSwap(nil, &e.Error) })
		if rec != nil {
			sh := rec.shard()
			sub.OnPublication(func(e centrifugego.PublicationEvent) { rec.record(sh, e.Data) })
		}
		if err := c.Connect(); err != nil {
			return err
		}
		return sub.Subscribe()
	})
	if err == nil {
		err = waitFor(ctx, 30*time.Second, "centrifuge subscribers subscribed", func() bool {
			return subscribed.Load() >= int64(n) || failed.Load() != nil
		})
	}
	if err == nil && failed.Load() != nil {
		err = fmt.Errorf("centrifuge subscription: %w", *failed.Load())
	}
	if err != nil {
		subs.close()
		return nil, err
	}
	return subs, nil
}

func (s *centrifugeSubs) deliveries() int64 { return s.rec.applied.Load() }

func (s *centrifugeSubs) close() {
	var wg sync.WaitGroup
	for _, c := range s.cs {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

func (s *centrifugeSystem) openIdle(ctx context.Context, n int) (func(), error) {
	subs, err := s.dialN(ctx, n, new(atomic.Int64), objectsIdleChannel, false, nil)
	if err != nil {
		return nil, err
	}
	return subs.close, nil
}

func (s *centrifugeSystem) masterTarget() (string, string) { return "ws", s.addr }

func (s *centrifugeSystem) openSubs(ctx context.Context, n int, rec *objRecorder) (objSubs, error) {
	return s.dialN(ctx, n, &rec.wire, objectsHotChannel, true, rec)
}

// ---- baseline ----

// baselineSystem is the plain websocket broadcast: every update is the
// full object, read by a coder/websocket client.
type baselineSystem struct {
	addr string
	proc *proc
}

func (s *baselineSystem) name() string { return "baseline" }
func (s *baselineSystem) pids() []int  { return pidsOf([]*proc{s.proc}) }

type baselineSubs struct {
	conns  []*websocket.Conn
	rec    *objRecorder
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func (s *baselineSystem) dialN(ctx context.Context, n int, wire *atomic.Int64, channel string, rec *objRecorder) (*baselineSubs, error) {
	rctx, cancel := context.WithCancel(context.Background())
	subs := &baselineSubs{conns: make([]*websocket.Conn, n), rec: rec, cancel: cancel}
	hc := countingHTTP(wire)
	err := parallel(ctx, n, 16, func(i int) error {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		conn, _, err := websocket.Dial(dctx, "ws://"+s.addr+"/ws?ch="+channel, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return err
		}
		conn.SetReadLimit(16 << 20)
		subs.conns[i] = conn
		if rec == nil {
			conn.CloseRead(rctx)
			return nil
		}
		sh := rec.shard()
		subs.wg.Go(func() {
			for {
				_, b, err := conn.Read(rctx)
				if err != nil {
					return
				}
				rec.record(sh, b)
			}
		})
		return nil
	})
	if err != nil {
		subs.close()
		return nil, err
	}
	return subs, nil
}

func (s *baselineSubs) deliveries() int64 { return s.rec.applied.Load() }

func (s *baselineSubs) close() {
	s.cancel()
	for _, c := range s.conns {
		if c != nil {
			_ = c.CloseNow()
		}
	}
	s.wg.Wait()
}

func (s *baselineSystem) openIdle(ctx context.Context, n int) (func(), error) {
	subs, err := s.dialN(ctx, n, new(atomic.Int64), objectsIdleChannel, nil)
	if err != nil {
		return nil, err
	}
	return subs.close, nil
}

func (s *baselineSystem) masterTarget() (string, string) { return "ws", s.addr }

func (s *baselineSystem) openSubs(ctx context.Context, n int, rec *objRecorder) (objSubs, error) {
	subs, err := s.dialN(ctx, n, &rec.wire, objectsHotChannel, rec)
	if err != nil {
		return nil, err
	}
	// The server adds a subscriber once its upgrade is done: give the
	// last ones a moment, so that the warm-up starts with all of them.
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		subs.close()
		return nil, err
	}
	return subs, nil
}
