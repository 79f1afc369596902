package api_test

import (
	"net/http"
	"testing"

	"shoal/internal/agent"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// TestRateLimit_OverTheRateIs429: a client over --http-rate gets 429
// rate_limited with Retry-After; another client and health checks do not.
func TestRateLimit_OverTheRateIs429(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithModules("log"), testcluster.WithConfig(func(i int, cfg *agent.Config) {
		cfg.RatePerClient, cfg.RateBurst = 0.5, 3 // a token every 2 s: the test outruns it
	}))
	url := c.Leader().URL()
	me := http.Header{"Authorization": {"Bearer me"}} // no token is configured: it names the client
	for range 3 {
		if r := call(t, http.MethodGet, url+"/v1/status", "", me); r.status != http.StatusOK {
			t.Fatalf("within the burst: %v", r)
		}
	}
	r := call(t, http.MethodGet, url+"/v1/status", "", me)
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After")
	}
	if r := call(t, http.MethodGet, url+"/v1/status", "", http.Header{"Authorization": {"Bearer you"}}); r.status != http.StatusOK {
		t.Fatalf("another client: %v", r)
	}
	for _, path := range []string{"/v1/health/live", "/v1/health/ready", "/livez", "/readyz"} {
		for range 5 {
			// Ready may still say 503 while the node catches up: only a
			// 429 would be the limiter's.
			if r := call(t, http.MethodGet, url+path, "", me); r.status == http.StatusTooManyRequests {
				t.Fatalf("a health check was limited: %s %v", path, r)
			}
		}
	}
	if moduletest.MetricValue(t, c.Leader().Agent().Registry(), "shoal_http_rate_limited_total") < 1 {
		t.Fatalf("the refusal was not counted")
	}
}
