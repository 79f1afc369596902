package clusterport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/keyring"
	"shoal/internal/testlog"
)

// newPort serves a port for name on 127.0.0.1:0, closed when the test ends.
func newPort(t *testing.T, name string) (*Port, *prometheus.Registry) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := New(ln, Config{NodeName: name, HandshakeTimeout: 2 * time.Second,
		Logger: testlog.Logger(t, slog.LevelDebug), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p, reg
}

func listen(t *testing.T, p *Port, k Kind) net.Listener {
	t.Helper()
	l, err := p.Listen(k)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// acceptOne accepts one connection on l in the background.
func acceptOne(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func TestPort_ConnectionReachesItsKindWithTheHeaderConsumed(t *testing.T) {
	a, _ := newPort(t, "a")
	b, reg := newPort(t, "b")
	accepted := acceptOne(listen(t, b, KindRaft))

	conn, err := a.Dial(context.Background(), KindRaft, "b", b.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	in := <-accepted
	if in == nil {
		t.Fatal("the listener was closed")
	}
	defer in.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v; want the bytes after the header", buf, err)
	}
	// The port counts the hand-over after the listener took the
	// connection: it may not have counted yet.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := testutil.ToFloat64(b.metrics.inbound.WithLabelValues("raft", "accepted"))
		if got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accepted counter: %v", got)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "shoal_clusterport_inbound_connections_total"); err != nil || n == 0 {
		t.Fatalf("metrics not registered: %d %v", n, err)
	}
}

func TestPort_RefusesAConnectionMeantForAnotherNode(t *testing.T) {
	a, _ := newPort(t, "a")
	b, _ := newPort(t, "b")
	listen(t, b, KindRaft)
	// a believes c listens where b does (a stale address).
	_, err := a.Dial(context.Background(), KindRaft, "c", b.Addr().String())
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != ReasonWrongNode {
		t.Fatalf("got %v, want a wrong_node refusal", err)
	}
	if !errors.Is(err, ErrRefused) || refused.Message != "this is b, not c" {
		t.Fatalf("got %q, want the receiver's explanation", refused.Message)
	}
}

// TestPort_RefusesItself is the two-leaders bug of issue 9 in small: a
// node whose configuration puts a peer at its own address must not talk
// to itself as if to that peer.
func TestPort_RefusesItself(t *testing.T) {
	a, _ := newPort(t, "a")
	listen(t, a, KindRaft)
	_, err := a.Dial(context.Background(), KindRaft, "b", a.Addr().String())
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != ReasonWrongNode {
		t.Fatalf("dial b at own address: got %v, want wrong_node", err)
	}
	// A forged header that names this node as the sender is refused too.
	_, err = a.Dial(context.Background(), KindRaft, "a", a.Addr().String())
	if !errors.As(err, &refused) || refused.Reason != ReasonSelf {
		t.Fatalf("dial self: got %v, want self", err)
	}
}

func TestPort_RefusesAKindNobodyServes(t *testing.T) {
	a, _ := newPort(t, "a")
	b, _ := newPort(t, "b")
	_, err := a.Dial(context.Background(), KindRaft, "b", b.Addr().String())
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != ReasonUnknownKind {
		t.Fatalf("got %v, want unknown_kind", err)
	}
	// Once served, then closed, it is refused again.
	l := listen(t, b, KindRaft)
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept on a closed listener: %v", err)
	}
	_, err = a.Dial(context.Background(), KindRaft, "b", b.Addr().String())
	if !errors.As(err, &refused) || refused.Reason != ReasonUnknownKind {
		t.Fatalf("after close: got %v, want unknown_kind", err)
	}
}

// TestPort_GarbageAndSilentPeersDoNotBlockOthers: a connection that sends
// no header, or a wrong one, is closed without an answer, and a good one
// is served meanwhile.
func TestPort_GarbageAndSilentPeersDoNotBlockOthers(t *testing.T) {
	a, _ := newPort(t, "a")
	b, _ := newPort(t, "b")
	accepted := acceptOne(listen(t, b, KindRaft))

	silent, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	garbage, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	if _, err := garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}

	conn, err := a.Dial(context.Background(), KindRaft, "b", b.Addr().String())
	if err != nil {
		t.Fatalf("dial while others stall: %v", err)
	}
	conn.Close()
	if c := <-accepted; c != nil {
		c.Close()
	}
	// The garbage connection is closed without an answer (EOF, or a
	// reset: the receiver closed with unread bytes).
	_ = garbage.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if n, err := garbage.Read(make([]byte, 1)); n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("garbage got %d bytes, %v; want the connection closed", n, err)
	}
	// The silent one is closed once the handshake timeout passes.
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("silent peer: got %v, want EOF after the handshake timeout", err)
	}
}

func TestPort_DialGivesUpWithItsContext(t *testing.T) {
	a, _ := newPort(t, "a")
	// A listener that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := acceptOne(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = a.Dial(ctx, KindRaft, "b", ln.Addr().String())
	if err == nil {
		t.Fatal("dial succeeded against a peer that never answers")
	}
	if c := <-held; c != nil {
		c.Close()
	}
}

func TestPort_CloseEndsAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ln, Config{NodeName: "a", Logger: testlog.Logger(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t, p, KindRaft)
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, err := p.Listen(Kind(9)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listen after close: %v", err)
	}
}

// securePort serves a port for name whose connections run under mutual
// TLS from sec.
func securePort(t *testing.T, name string, sec Security) *Port {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ln, Config{NodeName: name, Security: sec, HandshakeTimeout: 2 * time.Second,
		Logger: testlog.Logger(t, slog.LevelDebug), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func ringFor(t *testing.T, node string, s keyring.Secret) *keyring.Ring {
	t.Helper()
	r, err := keyring.Open("", node, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newSecret(t *testing.T) keyring.Secret {
	t.Helper()
	g, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := keyring.Parse(g)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPort_MutualTLSCarriesTheProvenName(t *testing.T) {
	s := newSecret(t)
	a := securePort(t, "a", ringFor(t, "a", s))
	b := securePort(t, "b", ringFor(t, "b", s))
	accepted := acceptOne(listen(t, b, KindRaft))
	conn, err := a.Dial(context.Background(), KindRaft, "b", b.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	in := <-accepted
	if in == nil {
		t.Fatal("nothing accepted")
	}
	defer in.Close()
	if got := PeerName(in); got != "a" {
		t.Fatalf("peer name %q, want a", got)
	}
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(in, make([]byte, 1)); err != nil {
		t.Fatalf("read through TLS: %v", err)
	}
}

// TestPort_NoSecretOrWrongSecretGetsNowhere: without the cluster's secret
// a process cannot open any connection to a node, in either direction.
func TestPort_NoSecretOrWrongSecretGetsNowhere(t *testing.T) {
	s := newSecret(t)
	b := securePort(t, "b", ringFor(t, "b", s))
	breg := b.metrics
	listen(t, b, KindRaft)
	wrong := securePort(t, "x", ringFor(t, "x", newSecret(t)))
	if _, err := wrong.Dial(context.Background(), KindRaft, "b", b.Addr().String()); !errors.Is(err, ErrTLS) {
		t.Fatalf("wrong secret: got %v, want ErrTLS", err)
	}
	plain, _ := newPort(t, "y")
	if _, err := plain.Dial(context.Background(), KindRaft, "b", b.Addr().String()); err == nil {
		t.Fatal("a plain connection reached a secure port")
	}
	testEventually(t, func() bool { return testutil.ToFloat64(breg.inbound.WithLabelValues("unknown", "tls")) >= 2 })
	// And the other way: a secure node does not talk to a plain one.
	listen(t, plain, KindRaft)
	a := securePort(t, "a", ringFor(t, "a", s))
	if _, err := a.Dial(context.Background(), KindRaft, "y", plain.Addr().String()); err == nil {
		t.Fatal("a secure node completed a connection to a plain one")
	}
}

// TestPort_RefusesAHeaderThatContradictsTheCertificate: a member may only
// speak as itself.
func TestPort_RefusesAHeaderThatContradictsTheCertificate(t *testing.T) {
	s := newSecret(t)
	b := securePort(t, "b", ringFor(t, "b", s))
	listen(t, b, KindRaft)
	// A process with a's certificate whose header says it is c.
	liar := securePort(t, "c", ringFor(t, "a", s))
	_, err := liar.Dial(context.Background(), KindRaft, "b", b.Addr().String())
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != ReasonImpostor {
		t.Fatalf("got %v, want an impostor refusal", err)
	}
}

func testEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
