package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"shoal/consensus"
	"shoal/console"
	"shoal/internal/httpjson"
	"shoal/internal/sse"
	"shoal/membership"
	"shoal/modules"
)

// Store is the Raft node as the API reads and manages it
// (*consensus.Node).
type Store interface {
	IsLeader() bool
	// Leader returns the leader's ID and Raft address ("" if none).
	Leader() (id, addr string)
	Stats() consensus.Stats
	Configuration() (raft.Configuration, error)
	// CaughtUp reports whether this node has applied what the leader had
	// committed when it started, and if not, why.
	CaughtUp() (ok bool, reason string)
	RemoveServer(id string) error
	TransferLeadership() error
}

// Members is the gossip membership as the API lists and joins it
// (*membership.Membership).
type Members interface {
	LocalMember() membership.Member
	Members() []membership.Member
	Join(addrs []string) (int, error)
}

// Modules are the node's started modules (*modules.Manager).
type Modules interface {
	Modules() []modules.Module
	IDs() []string
}

// Deps is what the API serves from; the agent fills it.
type Deps struct {
	NodeName     string
	Version      string
	Raft         Store
	Members      Members
	Modules      Modules
	Registry     *prometheus.Registry
	Token        string
	MaxBodyBytes int64
	// BodyTimeout bounds the time a client may take to send a request
	// body (408 beyond); 0 means no bound.
	BodyTimeout time.Duration
	// CORSOrigins are the origins (scheme://host[:port]) whose pages may
	// call the API from a browser; none by default.
	CORSOrigins []string
	// MaxStreams and MaxStreamsPerClient bound the event streams open on
	// this node, in all and per client (token, or address without one);
	// 0 means no bound.
	MaxStreams, MaxStreamsPerClient int
	// RatePerClient is the requests per second a client (token, or
	// address) may send this node, with bursts of RateBurst; 0: no limit.
	RatePerClient float64
	RateBurst     int
	// Alarms lists the members whose disk alarm is raised; while any is,
	// client writes are refused with 507 disk_full. Nil: no alarms.
	Alarms func() []string
	Logger *slog.Logger
	// Stopping reports that the node is shutting down (ready goes false).
	Stopping func() bool
	// Leave starts a graceful leave and returns at once.
	Leave func()
	// OnLeader serves a leader-only request on the leader when this node
	// follows: the leader's status, headers and body, or a consensus error
	// (no leader, not delivered, outcome unknown).
	OnLeader func(ctx context.Context, r *http.Request, body []byte) (status int, header http.Header, out []byte, err error)
	// Security reports how node-to-node traffic is protected (/v1/status).
	Security func() any
	// Keyring runs a keyring operation (list, install, use, remove) on
	// every alive member and returns their answers.
	Keyring func(ctx context.Context, op, key string) (any, error)
	// Tokens, if set, resolves scoped tokens instead of the acl module:
	// a client's (a TokenResolver asking servers).
	Tokens Tokens
	// Forward, on a client (--role client, Raft nil), serves on a server
	// every request this node has no route for: Raft modules, Raft
	// management, members, backups. Nil on servers.
	Forward Forwarder
}

// Forwarder carries a client's requests to a server (the agent's, over
// the cluster port).
type Forwarder interface {
	http.Handler
	// Ready says why no request could be forwarded now (nil: it could).
	Ready() error
}

type server struct {
	Deps
	metrics *httpMetrics
	streams *sse.Limiter
	rates   *rateLimits // nil: no rate limit
	// scoped is the acl module (nil if the node does not run it), and
	// revoked ends the requests of its revoked tokens.
	scoped  Tokens
	revoked *revocations
}

var (
	_ Store   = (*consensus.Node)(nil)
	_ Members = (*membership.Membership)(nil)
	_ Modules = (*modules.Manager)(nil)
)

// New returns the node's HTTP handler.
func New(d Deps) (http.Handler, error) {
	m, err := newHTTPMetrics(d.Registry)
	if err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	s := &server{Deps: d, metrics: m, revoked: newRevocations()}
	if s.scoped = s.tokens(); s.scoped != nil {
		s.scoped.OnRevoke(s.revoked.revoked)
	}
	if s.streams, err = newStreamLimits(d.Registry, d.MaxStreams, d.MaxStreamsPerClient); err != nil {
		return nil, fmt.Errorf("register stream metrics: %w", err)
	}
	if s.rates, err = newRateLimits(d.Registry, d.RatePerClient, d.RateBurst); err != nil {
		return nil, fmt.Errorf("register rate limit metrics: %w", err)
	}
	b, err := newBrowsers(d.CORSOrigins)
	if err != nil {
		return nil, err
	}
	cc := console.Config{Token: d.Token}
	if s.scoped != nil {
		cc.Scoped = func(secret string) bool { _, ok := s.scoped.Authenticate(secret); return ok }
	}
	ui, err := console.New(cc)
	if err != nil {
		return nil, err
	}

	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(s.withLogger)
	r.Use(s.observe)
	r.Use(s.recoverer) // inside the log and metrics, so they see a panic's 500
	r.Use(b.handler)   // before routing and auth: preflights carry no token
	r.Use(s.limitBody)
	r.Use(s.timeBody)
	r.Use(s.limitStreams)
	r.Use(s.limitRate)
	r.Use(s.gateWrites)
	r.Use(middleware.GetHead) // HEAD works wherever GET does
	r.NotFound(httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		return httpjson.ErrNotFound.WithMessage("no route for %s %s", r.Method, modules.Echo(r.URL.Path))
	}))
	r.MethodNotAllowed(httpjson.Handle(func(w http.ResponseWriter, req *http.Request) error {
		if allow := allowedMethods(r, req.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
		}
		return httpjson.ErrMethod.WithMessage("%s is not allowed on %s", req.Method, modules.Echo(req.URL.Path))
	}))

	// Health checks stay open without a token: orchestrators probe them.
	r.Get("/livez", httpjson.Handle(s.live))
	r.Get("/readyz", httpjson.Handle(s.ready))
	r.Get("/v1/health/live", httpjson.Handle(s.live))
	r.Get("/v1/health/ready", httpjson.Handle(s.ready))

	// Static assets modules serve to browsers before they hold a token.
	for _, mod := range d.Modules.Modules() {
		if pr, ok := mod.(modules.PublicRouter); ok {
			pr.PublicRoutes(r)
		}
	}
	// The web console's page and assets (/ui/); its API calls
	// (/ui/api/...) are rewritten by ui.Wrap below into API requests that
	// carry the console cookie's token and meet this same middleware.
	ui.Routes(r)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Handle("/metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{Timeout: 10 * time.Second, EnableOpenMetrics: true}))
		r.Route("/v1", func(r chi.Router) {
			s.routes(r)
			for _, mod := range d.Modules.Modules() {
				if rt, ok := mod.(modules.Router); ok {
					rt.Routes(r)
				}
			}
		})
	})
	if d.Forward != nil {
		return ui.Wrap(forwardUnrouted(r, d.Forward)), nil
	}
	return ui.Wrap(r), nil
}

// forwardUnrouted serves with local what it has a route for, and the rest
// with forward: on a client, the routes of Raft modules and of Raft
// management are a server's. A request forwarded meets none of this
// node's middleware; the server's checks it (token, limits, CORS), with
// the caller's address.
func forwardUnrouted(local chi.Router, forward http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet // middleware.GetHead serves HEAD as GET
		}
		if local.Match(chi.NewRouteContext(), method, r.URL.Path) || (r.Method == http.MethodOptions && local.Match(chi.NewRouteContext(), http.MethodGet, r.URL.Path)) {
			local.ServeHTTP(w, r)
			return
		}
		forward.ServeHTTP(w, r)
	})
}

// allowedMethods lists the methods routes answers on path, for the Allow
// header of a 405 (RFC 9110 requires it; chi sets it only with its own
// handler).
func allowedMethods(routes chi.Routes, path string) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if routes.Match(chi.NewRouteContext(), m, path) || (m == http.MethodHead && routes.Match(chi.NewRouteContext(), http.MethodGet, path)) {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// routes is the node's own route table. A client (Forward set) serves
// what needs no Raft; members (with their suffrage), Raft peers and
// backups are a server's, and reach one through forwardUnrouted.
func (s *server) routes(r chi.Router) {
	r.Get("/status", httpjson.Handle(s.status))
	r.Post("/cluster/join", httpjson.Handle(s.join))
	r.Post("/cluster/leave", httpjson.Handle(s.leave))
	r.Get("/keyring", httpjson.Handle(s.keyringList))
	r.Post("/keyring/{op:install|use|remove}", httpjson.Handle(s.keyringChange))
	if s.Forward != nil {
		return
	}
	r.Get("/members", httpjson.Handle(s.membersList))
	r.Get("/raft/peers", httpjson.Handle(s.raftPeers))
	r.Delete("/raft/peers/{name}", httpjson.Handle(s.onLeader(s.removePeer)))
	r.Post("/raft/transfer-leadership", httpjson.Handle(s.onLeader(s.transferLeadership)))
	r.Get("/snapshot", httpjson.Handle(s.snapshotSave))
	r.Put("/snapshot", httpjson.Handle(s.snapshotRestore))
}
