package api

import (
	"net/http"
	"net/http/httputil"
	"net/url"

	"shoal/consensus"
	"shoal/internal/httpjson"
)

// onLeader runs h on the leader: on a follower the request is proxied to the
// leader's HTTP API, once (a proxied request that finds no leader there
// fails instead of bouncing on).
func (s *server) onLeader(h httpjson.HandlerFunc) httpjson.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.Raft.IsLeader() {
			return h(w, r)
		}
		if r.Header.Get("X-Shoal-Forwarded") != "" {
			return consensus.ErrNotLeader
		}
		addr, ok := s.LeaderHTTP()
		if !ok {
			return consensus.ErrNoLeader
		}
		var proxyErr error
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(&url.URL{Scheme: "http", Host: addr})
				pr.Out.Header.Set("X-Shoal-Forwarded", "1")
			},
			Transport: s.Transport,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				proxyErr = consensus.ErrLeaderUnreachable
			},
		}
		proxy.ServeHTTP(w, r)
		return proxyErr
	}
}
