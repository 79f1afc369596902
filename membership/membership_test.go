package membership

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMembership_ThreeNodesSeeEachOther(t *testing.T) {
	nodes := startCluster(t, 3, func(i int, cfg *Config) {
		cfg.Meta.BootstrapExpect = 3
		cfg.Meta.HasRaftState = i == 0
	})
	for _, m := range nodes {
		got := m.Members()
		if len(got) != 3 {
			t.Fatalf("%s: got %d members, want 3", m.LocalName(), len(got))
		}
		for i, mem := range got {
			want := nodes[i]
			if mem.Name != want.LocalName() {
				t.Fatalf("%s: member %d is %s, want %s (sorted by name)", m.LocalName(), i, mem.Name, want.LocalName())
			}
			if mem.Status != StatusAlive {
				t.Errorf("%s sees %s %s, want alive", m.LocalName(), mem.Name, mem.Status)
			}
			if mem.Addr != want.LocalMember().Addr {
				t.Errorf("%s sees %s at %s, want %s", m.LocalName(), mem.Name, mem.Addr, want.LocalMember().Addr)
			}
			if !mem.Meta.Equal(want.cfg.Meta) {
				t.Errorf("%s sees meta of %s %+v, want %+v", m.LocalName(), mem.Name, mem.Meta, want.cfg.Meta)
			}
			if mem.Since.IsZero() {
				t.Errorf("%s sees %s with zero Since", m.LocalName(), mem.Name)
			}
		}
	}
	// Port 0 was replaced by the real port, and the advertised address
	// reaches the node.
	addr := nodes[1].LocalMember().Addr
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("local addr %q: want 127.0.0.1 with a real port (err %v)", addr, err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial advertised address: %v", err)
	}
	conn.Close()
}

func TestMembership_UpdateMetaPropagates(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	err := nodes[2].UpdateMeta(func(m *Meta) {
		m.HasRaftState = true
		m.Modules = append(m.Modules, "replication")
	})
	if err != nil {
		t.Fatalf("update meta: %v", err)
	}
	if got := nodes[2].LocalMember().Meta; !got.HasRaftState {
		t.Fatalf("local meta not updated: %+v", got)
	}
	eventually(t, 10*time.Second, func() error {
		for _, m := range nodes[:2] {
			mem, _ := m.Member("n2")
			if !mem.Meta.HasRaftState || !slices.Contains(mem.Meta.Modules, "replication") {
				return fmt.Errorf("%s sees meta %+v", m.LocalName(), mem.Meta)
			}
		}
		return nil
	})

	// A meta that does not fit is refused and the old one stays.
	err = nodes[2].UpdateMeta(func(m *Meta) { m.Version = string(make([]byte, 600)) })
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("got %v, want ErrMetaTooLarge", err)
	}
	if got := nodes[2].LocalMember().Meta.Version; got != "test" {
		t.Fatalf("version after refused update: got %q, want %q", got, "test")
	}
}

func TestMembership_LeaveShowsLeft(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	sub := nodes[0].Subscribe(16)
	defer sub.Close()

	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if got := nodes[2].LocalMember().Status; got != StatusLeft {
		t.Fatalf("leaver sees itself %s, want left", got)
	}
	if err := nodes[2].Leave(time.Second); err != nil {
		t.Fatalf("second leave: %v", err)
	}
	if err := nodes[2].UpdateMeta(func(*Meta) {}); !errors.Is(err, ErrLeft) {
		t.Fatalf("update meta after leave: got %v, want ErrLeft", err)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	eventually(t, 10*time.Second, statusOn(nodes[:2], "n2", StatusLeft))
	ev := nextEvent(t, sub, EventLeave, "n2")
	if ev.Member.Status != StatusLeft {
		t.Fatalf("leave event status: got %s, want left", ev.Member.Status)
	}
	if got := nodes[0].NumAlive(); got != 2 {
		t.Fatalf("NumAlive: got %d, want 2", got)
	}
}

func TestMembership_ShutdownShowsDead(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	start := time.Now()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	eventually(t, 10*time.Second, statusOn(nodes[:2], "n2", StatusDead))
	t.Logf("dead detected after %s", time.Since(start))

	// Forget drops dead members only.
	nodes[0].Forget("n2")
	nodes[0].Forget("n1")
	if _, ok := nodes[0].Member("n2"); ok {
		t.Fatal("n2 still known after Forget")
	}
	if _, ok := nodes[0].Member("n1"); !ok {
		t.Fatal("Forget removed alive member n1")
	}
	if got := len(nodes[0].Members()); got != 2 {
		t.Fatalf("members after forget: got %d, want 2", got)
	}

	// Calls after Shutdown fail cleanly.
	if _, err := nodes[2].Join([]string{nodes[0].LocalMember().Addr}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("join after shutdown: got %v, want ErrShutdown", err)
	}
	if err := nodes[2].Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Fatalf("leave after shutdown: got %v, want ErrShutdown", err)
	}
	if err := nodes[2].Channel(1).SendTo(context.Background(), "n0", []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("send after shutdown: got %v, want ErrShutdown", err)
	}
	if err := nodes[2].Channel(1).Broadcast("", []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("broadcast after shutdown: got %v, want ErrShutdown", err)
	}
}

func TestMembership_SubscribeEvents(t *testing.T) {
	a := start(t, testConfig(t, "a"))
	sub := a.Subscribe(64)

	b := start(t, testConfig(t, "b"))
	if _, err := b.Join([]string{a.LocalMember().Addr}); err != nil {
		t.Fatalf("join: %v", err)
	}
	ev := nextEvent(t, sub, EventJoin, "b")
	if ev.Member.Status != StatusAlive || ev.Member.Meta.Version != "test" {
		t.Fatalf("join event: %+v", ev.Member)
	}

	if err := b.UpdateMeta(func(m *Meta) { m.Version = "v2" }); err != nil {
		t.Fatalf("update meta: %v", err)
	}
	ev = nextEvent(t, sub, EventUpdate, "b")
	if ev.Member.Meta.Version != "v2" {
		t.Fatalf("update event meta version: got %q, want v2", ev.Member.Meta.Version)
	}

	if err := b.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ev = nextEvent(t, sub, EventLeave, "b")
	if ev.Member.Status != StatusDead {
		t.Fatalf("leave event status: got %s, want dead", ev.Member.Status)
	}

	sub.Close()
	sub.Close() // idempotent
	if _, ok := <-sub.C; ok {
		// Drain anything buffered before Close; the channel must end.
		for range sub.C {
		}
	}

	// Shutdown closes the remaining subscriptions.
	other := a.Subscribe(1)
	if err := a.Shutdown(); err != nil {
		t.Fatalf("shutdown a: %v", err)
	}
	for range other.C {
	}
}

func TestMembership_SubscriberOverflowIsCounted(t *testing.T) {
	cfg := testConfig(t, "a")
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	a := start(t, cfg)
	sub := a.Subscribe(1) // never read: the second event overflows
	defer sub.Close()

	b := start(t, testConfig(t, "b"))
	if _, err := b.Join([]string{a.LocalMember().Addr}); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := b.UpdateMeta(func(m *Meta) { m.Version = "v2" }); err != nil {
		t.Fatalf("update meta: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(a.metrics.eventsDropped); got < 1 {
			return fmt.Errorf("events dropped: %v", got)
		}
		return nil
	})
	// Members stays the source of truth.
	eventually(t, 10*time.Second, func() error {
		if mem, _ := a.Member("b"); mem.Meta.Version != "v2" {
			return fmt.Errorf("a sees b's version %q", mem.Meta.Version)
		}
		return nil
	})
}

func TestChannel_BroadcastReachesOthers(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	handlers := make([]*recordingHandler, len(nodes))
	for i, m := range nodes {
		handlers[i] = &recordingHandler{}
		m.Channel(7).SetHandler(handlers[i])
		m.Channel(8) // a second, idle channel
	}
	const n = 30
	want := make([]string, n)
	for i := range n {
		want[i] = "msg-" + strconv.Itoa(i)
		if err := nodes[0].Channel(7).Broadcast("", []byte(want[i])); err != nil {
			t.Fatalf("broadcast: %v", err)
		}
	}
	// Delivery is at least once: every message reaches every other node,
	// possibly more than once.
	for i := 1; i < len(nodes); i++ {
		eventually(t, 10*time.Second, func() error {
			got := handlers[i].messages()
			for _, w := range want {
				if !slices.Contains(got, w) {
					return fmt.Errorf("%s has %d messages, missing %q", nodes[i].LocalName(), len(got), w)
				}
			}
			return nil
		})
		t.Logf("%s received %d messages for %d sent", nodes[i].LocalName(), len(handlers[i].messages()), n)
	}
	if got := handlers[0].messages(); len(got) != 0 {
		t.Errorf("sender received its own broadcasts: %q", got)
	}
	if got := testutil.ToFloat64(nodes[1].metrics.received.WithLabelValues(kindBroadcast)); got < n {
		t.Errorf("received broadcast metric: got %v, want >= %d", got, n)
	}
}

func TestChannel_BroadcastKeyReplacesQueued(t *testing.T) {
	a := start(t, testConfig(t, "a")) // alone: nothing drains the queue
	c := a.Channel(3)
	for _, v := range []string{"v1", "v2", "v3"} {
		if err := c.Broadcast("key", []byte(v)); err != nil {
			t.Fatalf("broadcast: %v", err)
		}
	}
	if err := c.Broadcast("", []byte("u1")); err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if err := c.Broadcast("", []byte("u2")); err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if got := c.queued(); got != 3 {
		t.Fatalf("queued: got %d, want 3 (one per key, every unkeyed one)", got)
	}
	var got []string
	for _, msg := range (delegate{a}).GetBroadcasts(2, 1400) {
		got = append(got, string(msg))
	}
	slices.Sort(got)
	want := []string{"\x03u1", "\x03u2", "\x03v3"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := c.Broadcast("", make([]byte, MaxBroadcastSize)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized broadcast: got %v, want ErrMessageTooLarge", err)
	}
	if err := c.Broadcast("", make([]byte, MaxBroadcastSize-1)); err != nil {
		t.Fatalf("largest broadcast: %v", err)
	}
	// The three sent once stay queued for retransmission.
	if got := testutil.ToFloat64(a.metrics.broadcastsQueue); got != 4 {
		t.Fatalf("queue depth metric: got %v, want 4", got)
	}
}

// TestChannel_SendBestEffort: a message in one UDP packet reaches the
// member's handler as a direct message, as SendTo's does; an unknown
// member is an error, not a send.
func TestChannel_SendBestEffort(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	h := &recordingHandler{}
	nodes[1].Channel(5).SetHandler(h)
	// UDP may lose a packet even on loopback: send until one arrives.
	eventually(t, 5*time.Second, func() error {
		if err := nodes[0].Channel(5).SendBestEffort("n1", []byte("hello")); err != nil {
			return err
		}
		if got := h.messages(); len(got) == 0 || got[0] != "hello" {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
	if got := testutil.ToFloat64(nodes[1].metrics.received.WithLabelValues(kindDirect)); got < 1 {
		t.Errorf("direct metric: got %v, want at least 1", got)
	}
	if err := nodes[0].Channel(5).SendBestEffort("nobody", []byte("x")); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("send to unknown: got %v, want ErrUnknownNode", err)
	}
}

func TestChannel_SendTo(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	h := &recordingHandler{}
	nodes[1].Channel(5).SetHandler(h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	big := make([]byte, 64<<10) // larger than any packet: SendTo streams it
	big[0] = 'b'
	if err := nodes[0].Channel(5).SendTo(ctx, "n1", []byte("hello")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := nodes[0].Channel(5).SendTo(ctx, "n1", big); err != nil {
		t.Fatalf("send big: %v", err)
	}
	eventually(t, 5*time.Second, func() error {
		got := h.messages()
		if len(got) != 2 || got[0] != "hello" || len(got[1]) != len(big) {
			return fmt.Errorf("got %d messages", len(got))
		}
		return nil
	})
	if got := testutil.ToFloat64(nodes[1].metrics.received.WithLabelValues(kindDirect)); got != 2 {
		t.Errorf("direct metric: got %v, want 2", got)
	}
	if err := nodes[0].Channel(5).SendTo(ctx, "nobody", []byte("x")); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("send to unknown: got %v, want ErrUnknownNode", err)
	}
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if err := nodes[0].Channel(5).SendTo(cancelled, "n1", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("send with cancelled ctx: got %v, want context.Canceled", err)
	}
}

func TestChannel_PushPullStateIsPerTag(t *testing.T) {
	a := start(t, testConfig(t, "a"))
	b := start(t, testConfig(t, "b"))
	states := map[*Membership][]*stateHandler{}
	for _, m := range []*Membership{a, b} {
		for tag := byte(1); tag <= 2; tag++ {
			h := &stateHandler{}
			h.local = []byte(fmt.Sprintf("%s-%d", m.LocalName(), tag))
			m.Channel(tag).SetHandler(h)
			states[m] = append(states[m], h)
		}
	}
	// Tag 3 exists only on a, with a plain handler: it sends no state.
	a.Channel(3).SetHandler(&recordingHandler{})
	// Tag 4 has a state handler only on b: a skips b's frame for it.
	h4 := &stateHandler{}
	h4.local = []byte("b-4")
	b.Channel(4).SetHandler(h4)

	if _, err := b.Join([]string{a.LocalMember().Addr}); err != nil {
		t.Fatalf("join: %v", err)
	}
	// The join's push/pull and the periodic ones deliver each channel's
	// state, and only its own.
	for _, pair := range []struct{ on, from *Membership }{{a, b}, {b, a}} {
		for i, h := range states[pair.on] {
			want := fmt.Sprintf("%s-%d", pair.from.LocalName(), i+1)
			eventually(t, 10*time.Second, func() error {
				got := h.merged()
				if len(got) == 0 {
					return fmt.Errorf("%s tag %d merged nothing", pair.on.LocalName(), i+1)
				}
				for _, s := range got {
					if s != want {
						return fmt.Errorf("%s tag %d merged %q, want only %q", pair.on.LocalName(), i+1, s, want)
					}
				}
				return nil
			})
		}
	}
	if got := h4.merged(); len(got) != 0 {
		t.Fatalf("b tag 4 merged %q from a, which has no state for it", got)
	}
	// The drop comes after the merges of tags 1 and 2 in the same pass
	// over b's frames: wait for it too.
	eventually(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(a.metrics.dropped.WithLabelValues(dropNoHandler)); got < 1 {
			return fmt.Errorf("a dropped no_handler: got %v, want >= 1 (b's tag 4 state)", got)
		}
		return nil
	})
}

func TestRetryJoin_SeedComesUpLater(t *testing.T) {
	port := freePort(t)
	seed := "127.0.0.1:" + strconv.Itoa(port)

	rec := newRecorder()
	cfgB := testConfig(t, "b")
	cfgB.Logger = testLogger(t, "b", rec)
	b := start(t, cfgB)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.RetryJoin(ctx, []string{seed}) }()

	// Start the seed only after b has failed at least twice.
	eventually(t, 10*time.Second, func() error {
		if n := rec.count("join failed, retrying"); n < 2 {
			return fmt.Errorf("%d failed attempts", n)
		}
		return nil
	})
	cfgA := testConfig(t, "a")
	cfgA.BindAddr = seed
	a := start(t, cfgA)

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("retry join: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("retry join did not return after the seed came up")
	}
	waitAlive(t, []*Membership{a, b}, 2)
}

func TestRetryJoin_CancelReturnsContextError(t *testing.T) {
	b := start(t, testConfig(t, "b"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := b.RetryJoin(ctx, []string{"127.0.0.1:" + strconv.Itoa(freePort(t))})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}

	// Shutdown ends a RetryJoin that is waiting.
	done := make(chan error, 1)
	go func() {
		done <- b.RetryJoin(context.Background(), []string{"127.0.0.1:" + strconv.Itoa(freePort(t))})
	}()
	if err := b.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrShutdown) {
			t.Fatalf("got %v, want ErrShutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RetryJoin did not return after Shutdown")
	}
}

// countingTransport counts the packets memberlist writes through it.
type countingTransport struct {
	memberlist.NodeAwareTransport
	writes atomic.Int64
}

func (c *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	c.writes.Add(1)
	return c.NodeAwareTransport.WriteToAddress(b, addr)
}

func TestMembership_WrapTransport(t *testing.T) {
	var wrapped *countingTransport
	nodes := startCluster(t, 2, func(i int, cfg *Config) {
		if i == 1 {
			cfg.WrapTransport = func(nt memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
				wrapped = &countingTransport{NodeAwareTransport: nt}
				return wrapped
			}
		}
	})
	if wrapped == nil {
		t.Fatal("WrapTransport not called")
	}
	eventually(t, 5*time.Second, func() error {
		if wrapped.writes.Load() == 0 {
			return errors.New("no packet went through the wrapper")
		}
		return nil
	})
	if _, port, _ := net.SplitHostPort(nodes[1].LocalMember().Addr); port == "0" {
		t.Fatalf("wrapped node advertises port 0")
	}
}

func TestMembership_MetricsAndRegistryReuse(t *testing.T) {
	reg := prometheus.NewRegistry()
	nodes := startCluster(t, 3, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Registerer = reg
		}
	})
	alive := testutil.ToFloat64(nodes[0].metrics.members.WithLabelValues(string(StatusAlive)))
	if alive != 3 {
		t.Fatalf("alive gauge: got %v, want 3", alive)
	}
	n, err := testutil.GatherAndCount(reg,
		"shoal_membership_members",
		"shoal_membership_events_dropped_total",
		"shoal_membership_messages_received_total",
		"shoal_membership_messages_dropped_total",
		"shoal_membership_broadcast_queue_messages")
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if n < 5 {
		t.Fatalf("gathered %d series, want at least 5", n)
	}

	// A second Membership cannot share a registry, but can reuse it after
	// Shutdown.
	cfg := testConfig(t, "dup")
	cfg.Registerer = reg
	if _, err := New(cfg); err == nil {
		t.Fatal("New with an already used registry succeeded")
	}
	if err := nodes[0].Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	start(t, cfg)
}

// TestMembership_TrafficBytes checks the byte counters: gossip and probes
// go over UDP, the join's push/pull and SendTo over TCP, on both ends, and
// a SendTo's payload is counted in full.
func TestMembership_TrafficBytes(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	ch := []*Channel{nodes[0].Channel(7), nodes[1].Channel(7)}
	rec := &recordingHandler{}
	ch[1].SetHandler(rec)
	before := testutil.ToFloat64(nodes[0].metrics.sentBytes.WithLabelValues(transportTCP))
	payload := make([]byte, 64<<10) // random: memberlist compresses streams
	if _, err := cryptorand.Read(payload); err != nil {
		t.Fatal(err)
	}
	if err := ch[0].SendTo(context.Background(), nodes[1].LocalMember().Name, payload); err != nil {
		t.Fatalf("send: %v", err)
	}
	eventually(t, 5*time.Second, func() error {
		if len(rec.messages()) == 0 {
			return errors.New("message not received")
		}
		return nil
	})
	if got := testutil.ToFloat64(nodes[0].metrics.sentBytes.WithLabelValues(transportTCP)) - before; got < float64(len(payload)) {
		t.Fatalf("tcp bytes sent by SendTo: got %v, want at least %d", got, len(payload))
	}
	eventually(t, 5*time.Second, func() error {
		for _, n := range nodes {
			for _, c := range []*prometheus.CounterVec{n.metrics.sentBytes, n.metrics.receivedBytes} {
				for _, tr := range []string{transportUDP, transportTCP} {
					if testutil.ToFloat64(c.WithLabelValues(tr)) == 0 {
						return fmt.Errorf("%s: a %s byte counter is zero", n.LocalMember().Name, tr)
					}
				}
			}
		}
		return nil
	})
}

func TestNew_InvalidConfig(t *testing.T) {
	valid := func() Config { return testConfig(t, "x") }
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no name", func(c *Config) { c.NodeName = "" }},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:0" }},
		{"bind bad port", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }},
		{"advertise without host", func(c *Config) { c.AdvertiseAddr = ":7946" }},
		{"zero probe interval", func(c *Config) { c.Timing.ProbeInterval = 0 }},
		{"probe timeout above interval", func(c *Config) { c.Timing.ProbeTimeout = 2 * c.Timing.ProbeInterval }},
		{"zero gossip nodes", func(c *Config) { c.Timing.GossipNodes = 0 }},
		{"zero retransmit", func(c *Config) { c.RetransmitMult = 0 }},
		{"retry max below min", func(c *Config) { c.RetryJoinMax = c.RetryJoinMin / 2 }},
		{"meta too large", func(c *Config) { c.Meta.Modules = slices.Repeat([]string{"module-name"}, 50) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate: got nil, want an error")
			}
			if m, err := New(cfg); err == nil {
				m.Shutdown()
				t.Fatal("New: got nil error")
			}
		})
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}

func TestNew_PortInUse(t *testing.T) {
	a := start(t, testConfig(t, "a"))
	cfg := testConfig(t, "b")
	cfg.BindAddr = a.LocalMember().Addr
	if m, err := New(cfg); err == nil {
		m.Shutdown()
		t.Fatal("New on a used port succeeded")
	}
}
