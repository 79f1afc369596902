package clusterport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Security authenticates and encrypts the cluster port's connections with
// mutual TLS (the keyring package implements it). The node name the
// peer's certificate proves must be the one its header claims.
type Security interface {
	// ServerTLS configures connections this node accepts; it must require
	// and verify a client certificate.
	ServerTLS() *tls.Config
	// ClientTLS configures a connection this node opens to the node named
	// to; it must verify that the server is that node.
	ClientTLS(to string) *tls.Config
	// PeerName returns the node name a completed handshake's peer
	// certificate proves.
	PeerName(tls.ConnectionState) (string, error)
}

// Config configures a Port.
type Config struct {
	// Security, if set, puts every connection under mutual TLS; without
	// it, connections are plain TCP and the header's sender is taken on
	// trust (tests, --dev).
	Security Security
	// NodeName is this node's name: connections meant for another name,
	// or claiming to come from this one, are refused.
	NodeName string
	// Dial opens TCP connections to peers; nil means a net.Dialer. Tests
	// pass a partition gate's DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds reading a header and writing the answer on
	// both sides of a new connection.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
}

// DefaultHandshakeTimeout is used when Config.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 5 * time.Second

// Port accepts the cluster port's connections, checks their headers and
// hands each to the listener of its kind; it also dials peers with a
// header. Its methods are safe for concurrent use.
type Port struct {
	cfg        Config
	ln         net.Listener
	metrics    *metrics
	refusalLog logLimiter // a stranger knocking must not flood the log

	mu        sync.Mutex
	listeners map[Kind]*kindListener
	closed    bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// New serves the cluster port on ln, which the Port owns from now on. It
// starts one goroutine that accepts connections (and one per connection
// while its header is read); Close stops them all.
func New(ln net.Listener, cfg Config) (*Port, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("cluster port: node name is required")
	}
	if err := checkName(cfg.NodeName); err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Port{cfg: cfg, ln: ln, metrics: m, listeners: map[Kind]*kindListener{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the port is bound to.
func (p *Port) Addr() net.Addr { return p.ln.Addr() }

// Listen returns the listener of kind's connections: every accepted
// connection whose header names kind (and this node) is returned by its
// Accept, header consumed. Until Listen is called for a kind, or after its
// listener is closed, connections of that kind are refused.
func (p *Port) Listen(kind Kind) (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if _, ok := p.listeners[kind]; ok {
		return nil, fmt.Errorf("cluster port: %s is already served", kind)
	}
	l := &kindListener{p: p, kind: kind, conns: make(chan net.Conn), done: make(chan struct{})}
	p.listeners[kind] = l
	return l, nil
}

func (p *Port) acceptLoop() {
	defer p.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A temporary failure (too many open files): wait and retry,
			// as net/http's server does.
			p.cfg.Logger.Warn("cluster port accept failed", "err", err)
			select {
			case <-p.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		p.wg.Add(1)
		go p.handshake(conn)
	}
}

// handshake completes TLS (with Security) and reads conn's header under a
// deadline, then refuses the connection or hands it to its kind's
// listener.
func (p *Port) handshake(conn net.Conn) {
	defer p.wg.Done()
	_ = conn.SetDeadline(time.Now().Add(p.cfg.HandshakeTimeout))
	proven := "" // the sender's name as its certificate proves it
	if p.cfg.Security != nil {
		tc := tls.Server(conn, p.cfg.Security.ServerTLS())
		if err := tc.Handshake(); err != nil {
			p.refuse(conn, Header{}, ReasonTLS, "", err)
			return
		}
		name, err := p.cfg.Security.PeerName(tc.ConnectionState())
		if err != nil {
			p.refuse(tc, Header{}, ReasonTLS, "", err)
			return
		}
		conn, proven = tc, name
	}
	h, err := ReadHeader(conn)
	if err != nil {
		p.refuse(conn, Header{}, ReasonBadHeader, "the connection did not start with a shoal cluster port header", err)
		return
	}
	switch {
	case proven != "" && h.From != proven:
		p.refuse(conn, h, ReasonImpostor, fmt.Sprintf("the header names %s, the certificate %s", h.From, proven), nil)
		return
	case h.To != p.cfg.NodeName:
		p.refuse(conn, h, ReasonWrongNode, fmt.Sprintf("this is %s, not %s", p.cfg.NodeName, h.To), nil)
		return
	case h.From == p.cfg.NodeName:
		p.refuse(conn, h, ReasonSelf, fmt.Sprintf("%s does not take connections from itself", p.cfg.NodeName), nil)
		return
	}
	p.mu.Lock()
	l := p.listeners[h.Kind]
	p.mu.Unlock()
	if l == nil {
		p.refuse(conn, h, ReasonUnknownKind, fmt.Sprintf("%s does not serve %s connections", p.cfg.NodeName, h.Kind), nil)
		return
	}
	if _, err := conn.Write([]byte{byte(accepted)}); err != nil {
		p.metrics.accepted(h.Kind, "failed")
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	// Hand over, waiting no longer than a header may take: a consumer
	// that does not accept in that time is not serving.
	timer := time.NewTimer(p.cfg.HandshakeTimeout)
	defer timer.Stop()
	select {
	case l.conns <- &peerConn{Conn: conn, from: h.From}:
		p.metrics.accepted(h.Kind, accepted.String())
	case <-l.done:
		_ = conn.Close()
	case <-p.done:
		_ = conn.Close()
	case <-timer.C:
		p.cfg.Logger.Warn("cluster port connection dropped: nobody accepted it", "kind", h.Kind.String(), "from", h.From)
		p.metrics.accepted(h.Kind, "not_accepted")
		_ = conn.Close()
	}
}

func (p *Port) refuse(conn net.Conn, h Header, r Reason, msg string, cause error) {
	defer conn.Close()
	p.metrics.accepted(h.Kind, r.String())
	args := []any{"reason", r.String(), "remote", conn.RemoteAddr().String()}
	if h.From != "" {
		args = append(args, "from", h.From, "to", h.To, "kind", h.Kind.String())
	}
	if cause != nil {
		args = append(args, "err", cause)
	}
	if p.refusalLog.Allow() {
		p.cfg.Logger.Warn("cluster port connection refused", args...)
	}
	if r != ReasonBadHeader && r != ReasonTLS {
		_, _ = conn.Write(appendRefusal(nil, r, msg))
	}
}

// Dial connects to the node named to at addr for kind, sends the header
// and waits for the answer. A refusal is a *RefusedError; the connection
// is then closed. ctx bounds the dial and the handshake only.
func (p *Port) Dial(ctx context.Context, kind Kind, to, addr string) (net.Conn, error) {
	h := Header{Kind: kind, From: p.cfg.NodeName, To: to}
	hdr, err := AppendHeader(nil, h)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	defer cancel()
	raw, err := p.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		p.metrics.dialed(kind, "dial_failed")
		return nil, err
	}
	conn := raw
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Closing the connection when ctx ends unblocks the handshake at once.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	if p.cfg.Security != nil {
		tc := tls.Client(raw, p.cfg.Security.ClientTLS(to))
		if err = tc.HandshakeContext(ctx); err != nil {
			err = fmt.Errorf("%w: %w", ErrTLS, err)
		}
		conn = tc
	}
	if err == nil {
		if _, err = conn.Write(hdr); err == nil {
			err = readAnswer(conn, h)
		}
	}
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			p.metrics.dialed(kind, reasonLabel(refused.Reason))
		} else if errors.Is(err, ErrTLS) {
			p.metrics.dialed(kind, ReasonTLS.String())
		} else {
			p.metrics.dialed(kind, "failed")
		}
		_ = conn.Close()
		return nil, fmt.Errorf("cluster port %s connection to %s at %s: %w", kind, to, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	p.metrics.dialed(kind, accepted.String())
	return conn, nil
}

// Close stops accepting, closes every kind's listener and waits for the
// port's goroutines. Connections already handed over belong to their
// consumers and stay open.
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	for _, l := range p.listeners {
		l.closeOnce.Do(func() { close(l.done) })
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	p.metrics.unregister()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// peerConn is an accepted connection that knows which node opened it.
type peerConn struct {
	net.Conn
	from string
}

// PeerName returns the name of the node that opened conn, as its header
// said, for a connection a kind's listener accepted; "" for any other.
func PeerName(conn net.Conn) string {
	if pc, ok := conn.(*peerConn); ok {
		return pc.from
	}
	return ""
}

// kindListener is the net.Listener of one kind's connections.
type kindListener struct {
	p         *Port
	kind      Kind
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// Accept waits for the next connection of the listener's kind.
func (l *kindListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops handing this kind's connections over; later ones are
// refused. The port itself keeps serving other kinds.
func (l *kindListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	l.p.mu.Lock()
	if l.p.listeners[l.kind] == l {
		delete(l.p.listeners, l.kind)
	}
	l.p.mu.Unlock()
	return nil
}

// Addr is the port's bound address.
func (l *kindListener) Addr() net.Addr { return l.p.ln.Addr() }
