package api_test

import (
	"net/http"
	"strings"
	"testing"

	"shoal/internal/testcluster"
)

func TestAuth_BearerToken(t *testing.T) {
	const token = "s3cret"
	c := testcluster.New(t, 1, testcluster.WithModules("log"), testcluster.WithToken(token))
	n := c.Leader()

	bearer := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	protected := []struct{ method, path string }{
		{http.MethodGet, "/v1/status"},
		{http.MethodGet, "/v1/members"},
		{http.MethodGet, "/v1/raft/peers"},
		{http.MethodGet, "/v1/logs"},
		{http.MethodGet, "/metrics"},
		{http.MethodPost, "/v1/cluster/join"},
		{http.MethodPost, "/v1/cluster/leave"},
		{http.MethodPost, "/v1/raft/transfer-leadership"},
		{http.MethodDelete, "/v1/raft/peers/node0"},
		{http.MethodGet, "/v1/no-such-route"}, // no route discovery without a token
	}
	denied := []struct {
		name   string
		header http.Header
	}{
		{"no token", nil},
		{"wrong token", bearer("Bearer nope")},
		{"token prefix", bearer("Bearer " + token[:3])},
		{"token with a suffix", bearer("Bearer " + token + "x")},
		{"empty token", bearer("Bearer ")},
		{"no scheme", bearer(token)},
		{"other scheme", bearer("Basic " + token)},
		{"token twice", bearer("Bearer " + token + " " + token)},
	}
	for _, p := range protected {
		for _, d := range denied {
			t.Run(strings.TrimPrefix(p.path, "/")+"/"+d.name, func(t *testing.T) {
				r := call(t, p.method, n.URL()+p.path, "", d.header)
				wantError(t, r, http.StatusUnauthorized, "unauthorized")
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Fatalf("got WWW-Authenticate %q, want a Bearer challenge", got)
				}
			})
		}
	}

	t.Run("right token", func(t *testing.T) {
		for _, h := range []http.Header{bearer("Bearer " + token), bearer("bearer " + token)} {
			for _, path := range []string{"/v1/status", "/v1/members", "/v1/raft/peers", "/metrics", "/v1/logs"} {
				if r := call(t, http.MethodGet, n.URL()+path, "", h); r.status != http.StatusOK {
					t.Fatalf("GET %s with %q: got %v, want 200", path, h.Get("Authorization"), r)
				}
			}
			wantError(t, call(t, http.MethodGet, n.URL()+"/v1/no-such-route", "", h), http.StatusNotFound, "not_found")
		}
	})

	t.Run("health is open", func(t *testing.T) {
		for _, path := range []string{"/livez", "/readyz", "/v1/health/live", "/v1/health/ready"} {
			for _, h := range []http.Header{nil, bearer("Bearer nope")} {
				if r := call(t, http.MethodGet, n.URL()+path, "", h); r.status != http.StatusOK {
					t.Fatalf("GET %s with %q: got %v, want 200 without a valid token", path, h.Get("Authorization"), r)
				}
			}
		}
	})

	t.Run("token never echoed", func(t *testing.T) {
		r := call(t, http.MethodGet, n.URL()+"/v1/status", "", bearer("Bearer wrong-"+token))
		if strings.Contains(string(r.body), token) {
			t.Fatalf("the 401 echoes the token: %v", r)
		}
	})
}
