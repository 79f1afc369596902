package api

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"shoal/acl"
	"shoal/internal/httpjson"
	"shoal/internal/sse"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_http_requests_total",
			Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_http_request_duration_seconds",
			Help:    "HTTP request durations by method and route pattern (streams included: they last as long as the client stays).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// withLogger makes the node's logger available to httpjson.WriteError,
// which adds the request id when it logs (rarely: internal errors only).
func (s *server) withLogger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, httpjson.WithLogger(r, s.Logger, "request_id", middleware.GetReqID(r.Context())))
	})
}

// recoverer turns a panic into a logged 500 in the JSON shape.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				s.Logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
				httpjson.WriteError(w, r, fmt.Errorf("panic: %v", rec))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// observe is the access log and the request metrics in one wrapper (one
// response-writer wrap per request, no log attributes built unless the
// line is written). Metrics are by route pattern, never by raw path: keys
// and names would make the label set unbounded. The access line is at
// debug level, info for 5xx.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		next.ServeHTTP(ww, r)
		elapsed := time.Since(start)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(status)).Inc()
		s.metrics.duration.WithLabelValues(r.Method, route).Observe(elapsed.Seconds())

		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelInfo
		}
		if s.Logger.Enabled(r.Context(), level) {
			s.Logger.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", status,
				"bytes", ww.BytesWritten(), "duration", elapsed, "request_id", middleware.GetReqID(r.Context()))
		}
	})
}

// limitBody caps request bodies; reading past the cap fails with a
// *http.MaxBytesError, which httpjson reports as 413.
func (s *server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := s.MaxBodyBytes
		if r.Method == http.MethodPut && r.URL.Path == snapshotPath {
			limit = maxBackupBytes // a whole backup
		}
		if r.ContentLength > limit {
			httpjson.WriteError(w, r, httpjson.ErrBodyTooLarge.WithMessage(
				"request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

// timeBody bounds how long a client may take to send its request body
// (Deps.BodyTimeout): a body still arriving after that is cut and the
// request answered 408 body_timeout (counted in shoal_http_requests_total
// with code 408). The server's ReadHeaderTimeout bounds the headers; this
// bounds what follows, which http.Server's ReadTimeout would also do, but
// for the whole request, long-lived streams included. Once the body is
// read the deadline is cleared: a handler that then waits (a write waiting
// for Raft) must not have its connection's read deadline cancel it.
func (s *server) timeBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No body (a GET, a stream): nothing to time. The deadline would
		// otherwise stay on the connection, never lifted by a read to the
		// end, and cut a stream after BodyTimeout.
		if s.BodyTimeout <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.Header.Get("Upgrade") != "" ||
			(r.Method == http.MethodPut && r.URL.Path == snapshotPath) { // a backup takes as long as it takes
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(s.BodyTimeout)) != nil {
			next.ServeHTTP(w, r) // a writer without deadlines (tests)
			return
		}
		// The deadline is not lifted when the handler returns without
		// reading the body to its end: the server then drains the rest,
		// and the deadline bounds that too.
		r.Body = &timedBody{ReadCloser: r.Body, rc: rc, header: w.Header(), limit: s.BodyTimeout}
		next.ServeHTTP(w, r)
	})
}

// timedBody is a request body under a read deadline, cleared at EOF.
type timedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	header  http.Header // the response's, not yet written
	limit   time.Duration
	cleared bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.clear()
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		// The rest of the body will not be read: the connection closes
		// after the answer instead of the server draining it first
		// (which would wait on the slow client again).
		b.header.Set("Connection", "close")
		b.cleared = true // the connection goes: its deadline stays
		return n, httpjson.ErrBodyTimeout.WithMessage("the request body did not arrive within %v", b.limit)
	}
	return n, err
}

// clear lifts the read deadline once the body is read (before the server
// starts its background read, which a deadline would turn into a
// cancelled request); it runs on the handler's goroutine only.
func (b *timedBody) clear() {
	if !b.cleared {
		b.cleared = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

// authenticate requires the bearer token when one is configured: the
// bootstrap token (--token), which may do anything, or a scoped token of
// the acl module whose rules allow the request (acl.go).
func (s *server) authenticate(next http.Handler) http.Handler {
	if s.Token == "" {
		return next
	}
	want := []byte(s.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110 11.1); the token is not.
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok && isStream(r) {
			// A browser's EventSource and WebSocket cannot send headers:
			// a stream may carry the token as ?token=. Only the path is
			// ever logged, never the query.
			scheme, got, ok = "Bearer", r.URL.Query().Get("token"), r.URL.Query().Has("token")
		}
		if ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(got), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		var err error = httpjson.ErrUnauthorized
		if ok && strings.EqualFold(scheme, "Bearer") {
			var tok acl.Token
			if tok, err = authorize(s.scoped, got, r); err == nil {
				ctx, done := s.revoked.track(tok.AccessorID, r)
				defer done()
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
		}
		if errors.Is(err, httpjson.ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
		}
		if r.ContentLength != 0 {
			// Its body is not read: close rather than drain it first (a
			// stranger trickling a body would hold the answer back for
			// the whole body timeout).
			w.Header().Set("Connection", "close")
		}
		httpjson.WriteError(w, r, err)
	})
}

// isStream reports whether r opens a stream a browser cannot give an
// Authorization header: an EventSource (Accept: text/event-stream) or a
// WebSocket handshake, both GET.
func isStream(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		(strings.Contains(r.Header.Get("Accept"), "text/event-stream") || strings.EqualFold(r.Header.Get("Upgrade"), "websocket"))
}

// newStreamLimits returns the node's event-stream limiter, with its
// metrics: shoal_http_streams_open and shoal_http_streams_refused_total
// {scope="node"|"client"}.
func newStreamLimits(reg prometheus.Registerer, max, perClient int) (*sse.Limiter, error) {
	l := sse.NewLimiter(max, perClient)
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_http_streams_refused_total",
		Help: "Event streams refused because the node (scope=node) or the client (scope=client) had as many open as allowed.",
	}, []string{"scope"})
	refused.WithLabelValues("node")
	refused.WithLabelValues("client")
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_http_streams_open",
		Help: "Event streams open on this node, every module's.",
	}, func() float64 { return float64(l.Open()) })
	for _, c := range []prometheus.Collector{refused, open} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	l.OnRefused = func(perClient bool) {
		if perClient {
			refused.WithLabelValues("client").Inc()
		} else {
			refused.WithLabelValues("node").Inc()
		}
	}
	return l, nil
}

// limitStreams puts the node's stream limiter in the request's context,
// with the client it counts against: the token (a client with a token
// counts as one wherever it connects from), or the remote address.
func (s *server) limitStreams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(sse.WithLimiter(r.Context(), s.streams, clientOf(r))))
	})
}

// clientOf names the client a request counts against for limits: its
// token (wherever it connects from), or its address without one. The name
// may hold a token: it is never logged.
func clientOf(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		return a
	}
	if q := r.URL.Query(); q.Has("token") {
		return "Bearer " + q.Get("token")
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

// ErrDiskFull: a member's disk alarm is raised (less than --min-free-disk
// free), so the cluster takes no writes until space is freed. 507, as
// WebDAV's Insufficient Storage; etcd answers NOSPACE.
var ErrDiskFull = &httpjson.Error{Status: http.StatusInsufficientStorage, Code: "disk_full",
	Message: "the cluster refuses writes while a member's disk is nearly full", RetryAfter: 10 * time.Second}

// gateWrites refuses client writes (POST, PUT, PATCH) while any member's
// disk alarm is raised. Reads, streams and DELETEs (which free space) go
// on, and so does node administration, which an operator needs to
// recover: joining, leaving, Raft peers, the keyring.
func (s *server) gateWrites(next http.Handler) http.Handler {
	if s.Alarms == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			p := r.URL.Path
			admin := strings.HasPrefix(p, "/v1/cluster/") || strings.HasPrefix(p, "/v1/raft/") || strings.HasPrefix(p, "/v1/keyring")
			if alarms := s.Alarms(); len(alarms) > 0 && !admin {
				httpjson.WriteError(w, r, ErrDiskFull.WithMessage(
					"the disk alarm is raised on %s (less than --min-free-disk free): the cluster refuses writes until space is freed; reads go on",
					strings.Join(alarms, ", ")).WithDetail("alarms", alarms))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
