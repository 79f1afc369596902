package api

import (
	"io"
	"net/http"

	"shoal/consensus"
	"shoal/internal/httpjson"
)

// maxLeaderBody bounds the body of a request onLeader forwards: these are
// small administrative requests.
const maxLeaderBody = 1 << 20

// onLeader runs h on the leader: on a follower the request is served by
// the leader's own API handler, carried over the cluster port
// (Deps.OnLeader), once (a forwarded request that finds no leader there
// fails instead of bouncing on).
func (s *server) onLeader(h httpjson.HandlerFunc) httpjson.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.Raft.IsLeader() {
			return h(w, r)
		}
		if r.Header.Get("X-Shoal-Forwarded") != "" {
			return consensus.ErrNotLeader
		}
		if s.OnLeader == nil {
			return consensus.ErrNotLeader
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxLeaderBody+1))
		if err != nil {
			return err
		}
		if len(body) > maxLeaderBody {
			return httpjson.ErrBodyTooLarge
		}
		status, header, out, err := s.OnLeader(r.Context(), r, body)
		if err != nil {
			return err
		}
		for k, vs := range header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write(out)
		return nil
	}
}
