package api

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"shoal/internal/httpjson"
)

// Per-client request rate (--http-rate, --http-burst): a token bucket per
// client (its token, or its address without one, as for streams). A
// request over the rate is answered 429 rate_limited with the Retry-After
// its bucket gives, before any handler runs. Health checks are exempt:
// orchestrators probe them. Off by default (rate 0), as etcd and Consul
// are: a cluster's own clients (the CLI, services) should not find a
// limit they did not ask for.

// ErrRateLimited: the client sent more requests than --http-rate allows.
var ErrRateLimited = httpjson.Errorf(http.StatusTooManyRequests, "rate_limited",
	"too many requests from this client; slow down")

// idleBucket is how long a client's bucket is kept after its last request.
const idleBucket = 5 * time.Minute

// rateLimits holds one bucket per client.
type rateLimits struct {
	limit   rate.Limit
	burst   int
	limited prometheus.Counter

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimits(reg prometheus.Registerer, perSecond float64, burst int) (*rateLimits, error) {
	if perSecond <= 0 {
		return nil, nil
	}
	if burst < 1 {
		burst = int(math.Max(1, math.Ceil(perSecond)))
	}
	rl := &rateLimits{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{},
		limited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_http_rate_limited_total",
			Help: "Requests refused with 429 because their client was over --http-rate.",
		})}
	if err := reg.Register(rl.limited); err != nil {
		return nil, err
	}
	return rl, nil
}

// allow takes one request from client's bucket; when it is empty it
// returns how long until it holds one again.
func (rl *rateLimits) allow(client string, now time.Time) (bool, time.Duration) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if now.Sub(rl.swept) > idleBucket {
		// Forget idle clients, so a crowd of addresses cannot grow the
		// map without bound (each sweep is O(clients), once per period).
		for k, b := range rl.buckets {
			if now.Sub(b.seen) > idleBucket {
				delete(rl.buckets, k)
			}
		}
		rl.swept = now
	}
	b, ok := rl.buckets[client]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		rl.buckets[client] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitRate refuses a client's requests beyond its rate.
func (s *server) limitRate(next http.Handler) http.Handler {
	if s.rates == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/health/live", "/v1/health/ready", "/livez", "/readyz":
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := s.rates.allow(clientOf(r), time.Now()); !ok {
			s.rates.limited.Inc()
			e := ErrRateLimited.WithMessage("this client is over its %g requests per second (burst %d); retry in %v", float64(s.rates.limit), s.rates.burst, wait.Round(time.Millisecond))
			e.RetryAfter = max(wait, time.Second)
			httpjson.WriteError(w, r, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}
