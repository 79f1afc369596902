package peerrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/clusterport"
)

// Handler serves one method: from is the calling node's name, body the
// request. ctx ends when the call's connection breaks or the server
// closes. The returned bytes are the answer; an error reaches the caller
// through the configured error codec. Handlers run concurrently, each call
// on its own goroutine.
type Handler func(ctx context.Context, from string, body []byte) ([]byte, error)

// ServerConfig configures a Server.
type ServerConfig struct {
	// EncodeError turns a handler's error into the bytes the caller's
	// ClientConfig.DecodeError rebuilds it from; nil sends err.Error().
	EncodeError func(error) []byte
	// MaxInFlight bounds the calls of one connection served at once;
	// default 256. A peer past it waits (the server stops reading).
	MaxInFlight int
	// WriteTimeout bounds writing one answer; default 5 s.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// Registerer, if set, gets the served calls' metrics.
	Registerer prometheus.Registerer
}

func (c *ServerConfig) setDefaults() {
	if c.EncodeError == nil {
		c.EncodeError = func(err error) []byte { return []byte(err.Error()) }
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server serves the calls and streams that reach this node's cluster
// port. Handlers may be added at any time; a call for a method without one
// is answered ErrNoMethod. Its methods are safe for concurrent use.
type Server struct {
	cfg     ServerConfig
	metrics *serverMetrics
	calls   net.Listener
	streams net.Listener

	mu       sync.Mutex
	handlers map[string]Handler
	prefixes map[string]MethodHandler // by method prefix, for a family of methods
	streamHs map[string]StreamHandler
	streamPs map[string]NamedStreamHandler
	conns    map[net.Conn]struct{}
	closed   bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewServer serves port's call and stream connections until Close.
func NewServer(port *clusterport.Port, cfg ServerConfig) (*Server, error) {
	cfg.setDefaults()
	m, err := newServerMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	calls, err := port.Listen(clusterport.KindRPC)
	if err != nil {
		m.unregister()
		return nil, fmt.Errorf("serve peer rpc: %w", err)
	}
	streams, err := port.Listen(clusterport.KindStream)
	if err != nil {
		m.unregister()
		_ = calls.Close()
		return nil, fmt.Errorf("serve peer streams: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, metrics: m, calls: calls, streams: streams, handlers: map[string]Handler{},
		streamHs: map[string]StreamHandler{}, prefixes: map[string]MethodHandler{}, streamPs: map[string]NamedStreamHandler{},
		conns: map[net.Conn]struct{}{}, ctx: ctx, cancel: cancel}
	s.wg.Add(2)
	go s.accept(calls, s.serveCalls)
	go s.accept(streams, s.serveStream)
	return s, nil
}

// Handle serves method with h, replacing any handler it had.
func (s *Server) Handle(method string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[method] = h
	s.metrics.handled(method)
}

// MethodHandler serves a family of methods: method is the name called.
type MethodHandler func(ctx context.Context, from, method string, body []byte) ([]byte, error)

// HandlePrefix serves every method that starts with prefix and has no
// handler of its own with h (the longest matching prefix wins). A module
// host uses it to route "module/<id>/..." to the module.
func (s *Server) HandlePrefix(prefix string, h MethodHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefixes[prefix] = h
}

func (s *Server) handler(method string) Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.handlers[method]; ok {
		return h
	}
	if mh := longestPrefix(s.prefixes, method); mh != nil {
		return func(ctx context.Context, from string, body []byte) ([]byte, error) {
			return mh(ctx, from, method, body)
		}
	}
	return nil
}

// longestPrefix returns the value of the longest key of m that prefixes
// name, or the zero value.
func longestPrefix[V any](m map[string]V, name string) V {
	var best V
	n := -1
	for p, v := range m {
		if len(p) > n && strings.HasPrefix(name, p) {
			best, n = v, len(p)
		}
	}
	return best
}

func (s *Server) accept(ln net.Listener, serve func(net.Conn)) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return // the port's kind listeners fail only once closed
		}
		if !s.track(nc) {
			_ = nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc)
			serve(nc)
		}()
	}
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	_ = nc.Close()
}

// serveCalls reads requests and runs each on its own goroutine, at most
// MaxInFlight at once, until the connection breaks.
func (s *Server) serveCalls(nc net.Conn) {
	from := clusterport.PeerName(nc)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	var wmu sync.Mutex // one answer on the wire at a time
	bw := bufio.NewWriterSize(nc, 64<<10)
	br := bufio.NewReaderSize(nc, 64<<10)
	answer := func(f frame) {
		buf, err := appendFrame(nil, f)
		if err != nil { // an answer too large to send
			buf, _ = appendFrame(nil, frame{typ: frameError, id: f.id, body: s.cfg.EncodeError(err)})
		}
		wmu.Lock()
		defer wmu.Unlock()
		_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := bw.Write(buf); err == nil {
			err = bw.Flush()
			if err != nil {
				_ = nc.Close() // the caller sees the break: outcome unknown
			}
		}
	}
	for {
		f, err := readFrame(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.cfg.Logger.Debug("peer rpc connection ended", "from", from, "err", err)
			}
			return
		}
		if f.typ != frameRequest {
			s.cfg.Logger.Warn("peer rpc: unexpected frame; closing the connection", "from", from, "type", f.typ)
			return
		}
		start := time.Now()
		h := s.handler(f.method)
		if h == nil {
			s.metrics.calls.WithLabelValues("unknown", "no_method").Inc()
			answer(frame{typ: frameNoMethod, id: f.id})
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			out, err := h(ctx, from, f.body)
			defer s.metrics.served(f.method, start, err)
			if ctx.Err() != nil {
				// The server is stopping or the connection broke: the
				// handler was cut short, and "context canceled" is not
				// its answer. The caller sees the connection break
				// (outcome unknown: the handler may have acted).
				return
			}
			if err != nil {
				answer(frame{typ: frameError, id: f.id, body: s.cfg.EncodeError(err)})
				return
			}
			answer(frame{typ: frameAnswer, id: f.id, body: out})
		}()
	}
}

// Close stops accepting, breaks every connection (handler contexts end)
// and waits for the handlers and the server's goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]net.Conn, 0, len(s.conns))
	for nc := range s.conns {
		conns = append(conns, nc)
	}
	s.mu.Unlock()
	s.cancel()
	_ = s.calls.Close()
	_ = s.streams.Close()
	for _, nc := range conns {
		_ = nc.Close()
	}
	s.wg.Wait()
	s.metrics.unregister()
	return nil
}
