package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/clusterport"
	"shoal/internal/httpjson"
	"shoal/membership"
)

// A client (--role client) holds no Raft state: the API requests it has
// no route for (Raft modules, Raft management, members, backups) are
// served by a server's API handler. They travel as plain HTTP/1.1 over
// cluster-port streams, one request at a time per stream, streams kept
// open and reused as HTTP keep-alive connections: the cluster port
// authenticates both ends (mutual TLS with a cluster secret), and HTTP
// carries everything the API does, bodies of any size, event streams
// and websocket upgrades, with no second protocol to keep in step. Consul's
// client agents forward RPCs to servers the same way, over their server
// port.

// streamForwardedAPI is the peer stream a server serves forwarded API
// requests on.
const streamForwardedAPI = "api.http"

// Headers a client sets on a forwarded request. Only a server's
// forwarded-request listener reads them: on the public API they are
// ignored, so a caller cannot forge its address.
const (
	headerClientAddr = "X-Shoal-Client-Addr" // the caller's address, as the client saw it
	headerVia        = "X-Shoal-Via"         // the client's node name
)

// forwardHost names "any server" in forwarded requests' URLs: the dialer
// picks the server, so every pooled stream shares one host key.
const forwardHost = "shoal-servers"

// apiForwarder is a client's side: it proxies requests to servers.
type apiForwarder struct {
	a         *Agent
	logger    *slog.Logger
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	// slots bounds the requests forwarded at once (--http-max-streams):
	// each holds a stream and two goroutines here.
	slots chan struct{}

	mu   sync.Mutex
	last string // the server the last stream was opened to

	requests *prometheus.CounterVec // by outcome
	inFlight prometheus.Gauge
}

// Forwarding outcomes (shoal_forwarded_requests_total's label).
const (
	forwardAnswered = "answered"  // a server answered (any status)
	forwardNoServer = "no_server" // no server could be reached
	forwardFailed   = "failed"    // the stream broke before an answer
	forwardRefused  = "refused"   // too many requests in flight here
)

func newAPIForwarder(a *Agent) (*apiForwarder, error) {
	f := &apiForwarder{a: a, logger: a.logger.With("component", "forward")}
	if a.cfg.MaxStreams > 0 {
		f.slots = make(chan struct{}, a.cfg.MaxStreams)
	}
	f.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_forwarded_requests_total",
		Help: "API requests this client forwarded to a server, by outcome: answered, no_server, failed, refused.",
	}, []string{"outcome"})
	f.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_forwarded_requests_in_flight",
		Help: "API requests (streams and websockets included) this client is forwarding now.",
	})
	for _, c := range []prometheus.Collector{f.requests, f.inFlight} {
		if err := a.registry.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range []string{forwardAnswered, forwardNoServer, forwardFailed, forwardRefused} {
		f.requests.WithLabelValues(o)
	}
	f.transport = &http.Transport{
		DialContext:         f.dial,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true, // bodies pass through as they are
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", forwardHost
			pr.Out.Host = pr.In.Host // same-origin checks see the caller's host
			pr.Out.Header.Set(headerClientAddr, pr.In.RemoteAddr)
			pr.Out.Header.Set(headerVia, a.cfg.NodeName)
		},
		Transport:     f.transport,
		FlushInterval: -1, // event streams and log tails pass at once
		ErrorHandler:  f.failed,
		ModifyResponse: func(*http.Response) error {
			f.requests.WithLabelValues(forwardAnswered).Inc()
			return nil
		},
	}
	return f, nil
}

// ServeHTTP forwards r to a server.
func (f *apiForwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.slots != nil {
		select {
		case f.slots <- struct{}{}:
			defer func() { <-f.slots }()
		default:
			f.requests.WithLabelValues(forwardRefused).Inc()
			e := httpjson.Errorf(http.StatusServiceUnavailable, "forward_limit", "this client forwards %d requests already: retry, or use another node", cap(f.slots))
			e.RetryAfter = time.Second
			httpjson.WriteError(w, r, e)
			return
		}
	}
	f.inFlight.Inc()
	defer f.inFlight.Dec()
	// A stream forwarded (a log tail, a websocket) ends when this node
	// stops, as the node's own streams do.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(f.a.ctx, cancel)
	defer stop()
	r = r.WithContext(ctx)
	if err := f.replayable(w, r); err != nil {
		httpjson.WriteError(w, r, err)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// maxReplayableBody bounds the request bodies a client reads before
// forwarding them, so that they can be sent again.
const maxReplayableBody = 1 << 20

// replayable reads a small request body (up to maxReplayableBody, known
// length) and lets it be sent again (GetBody): a pooled stream to a
// server that has just died fails the first write, and the HTTP
// transport retries a request on another stream only if nothing of it
// was written and its body can be rewound. Larger bodies and streamed
// ones pass through as they come, and such a failure is a 502.
// The read is bounded by --http-body-timeout, as the API's own reads are.
func (f *apiForwarder) replayable(w http.ResponseWriter, r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength <= 0 || r.ContentLength > maxReplayableBody {
		return nil
	}
	rc := http.NewResponseController(w)
	if limit := f.a.cfg.BodyTimeout; limit > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(limit))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	if err != nil {
		// The rest of the body is not read: close rather than drain it.
		w.Header().Set("Connection", "close")
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return httpjson.ErrBodyTimeout.WithMessage("the request body did not arrive within %v", f.a.cfg.BodyTimeout)
		}
		return httpjson.BadRequest("body_unreadable", "the request body could not be read: %s", err.Error())
	}
	_ = rc.SetReadDeadline(time.Time{}) // the answer may stream for long
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}

var errNoServer = errors.New("no server is known alive")

// failed answers a request that got no answer from a server.
func (f *apiForwarder) failed(w http.ResponseWriter, r *http.Request, err error) {
	var e *httpjson.Error
	switch {
	case errors.Is(err, errNoServer) || errors.Is(err, errDialServers):
		f.requests.WithLabelValues(forwardNoServer).Inc()
		e = httpjson.Errorf(http.StatusServiceUnavailable, "no_server", "this client could not reach a server: %s", err.Error())
		e.RetryAfter = time.Second
	case r.Context().Err() != nil:
		f.requests.WithLabelValues(forwardFailed).Inc()
		return // the caller left, or this node is stopping: nobody reads an answer
	default:
		f.requests.WithLabelValues(forwardFailed).Inc()
		// The request may have reached the server: its outcome is unknown.
		e = httpjson.Errorf(http.StatusBadGateway, "forward_failed", "the server this client forwarded to did not answer: %s", err.Error())
	}
	f.logger.Warn("forwarded request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	httpjson.WriteError(w, r, e)
}

var errDialServers = errors.New("no server accepted a stream")

// dial opens a stream to a server: the last one that accepted, else the
// alive servers in random order (the pooled streams spread over them).
func (f *apiForwarder) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	servers := f.servers()
	if len(servers) == 0 {
		return nil, errNoServer
	}
	var errs []error
	for _, s := range servers {
		conn, err := f.a.peers.rpc.OpenStream(ctx, s.Name, s.Meta.RaftAddr, streamForwardedAPI)
		if err == nil {
			f.mu.Lock()
			f.last = s.Name
			f.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", errDialServers, errors.Join(errs...))
}

// servers lists the alive servers: the last one a stream opened to first,
// then the others shuffled.
func (f *apiForwarder) servers() []membership.Member {
	var out []membership.Member
	for _, m := range f.a.members.Members() {
		if m.Meta.IsClient() || m.Meta.RaftAddr == "" || m.Status != membership.StatusAlive {
			continue
		}
		out = append(out, m)
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	for i, m := range out {
		if m.Name == last {
			out[0], out[i] = out[i], out[0]
		}
	}
	return out
}

// Ready implements api.Forwarder: a client is ready once gossip shows it
// a server.
func (f *apiForwarder) Ready() error {
	if len(f.servers()) == 0 {
		return errNoServer
	}
	return nil
}

// close drops the pooled streams.
func (f *apiForwarder) close() { f.transport.CloseIdleConnections() }

// forwardedAPI is a server's side: an HTTP server on the streams clients
// open, serving the node's API handler with the caller's address.
type forwardedAPI struct {
	ln  *streamListener
	srv *http.Server
}

func (a *Agent) serveForwardedAPI() *forwardedAPI {
	f := &forwardedAPI{ln: newStreamListener(a.port.Addr())}
	f.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := a.apiHandler.Load()
			if h == nil {
				httpjson.WriteError(w, r, errNotReadyYet)
				return
			}
			// The stream's other end is a member the cluster port
			// authenticated: its word for the caller's address is
			// trusted, so limits and logs see the caller, not the client.
			if addr := r.Header.Get(headerClientAddr); addr != "" {
				if _, _, err := net.SplitHostPort(addr); err == nil {
					r.RemoteAddr = addr
				}
			}
			r.Header.Del(headerClientAddr)
			r.Header.Set(headerVia, clientName(r.Context()))
			(*h).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, viaKey{}, clusterport.PeerName(c))
		},
		ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	a.rpc.HandleStream(streamForwardedAPI, func(ctx context.Context, from string, conn net.Conn) {
		// peer RPC closes the stream when this handler returns: it waits
		// until the HTTP server (or a websocket it hijacked for) is done.
		c := &ownedConn{Conn: conn, closed: make(chan struct{})}
		if !f.ln.push(ctx, c) {
			return
		}
		select {
		case <-c.closed:
		case <-ctx.Done():
		}
	})
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := f.srv.Serve(f.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("forwarded api server stopped", "err", err)
		}
	}()
	return f
}

var errNotReadyYet = httpjson.Errorf(http.StatusServiceUnavailable, "not_ready", "this node is starting")

type viaKey struct{}

// clientName is the node a forwarded request came through.
func clientName(ctx context.Context) string {
	name, _ := ctx.Value(viaKey{}).(string)
	return name
}

// ownedConn reports when its owner has closed it.
type ownedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *ownedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// streamListener is a net.Listener of the streams a peer handler hands
// over.
type streamListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newStreamListener(addr net.Addr) *streamListener {
	return &streamListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands conn to Accept; false if the listener is closed (or ctx
// ended) first.
func (l *streamListener) push(ctx context.Context, conn net.Conn) bool {
	select {
	case l.conns <- conn:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.addr }
