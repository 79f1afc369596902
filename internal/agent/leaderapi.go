package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"shoal/consensus"
	"shoal/internal/httpjson"
)

// Leader-only API requests (removing a Raft peer, transferring
// leadership) that reach a follower are served by the leader's own API
// handler, carried over the cluster port as a peer call: node-to-node
// traffic never rides the client API (no second HTTP hop, no client TLS
// trust between nodes). The entry node has checked the client's token; the
// leader's handler checks it again, as it would for any request.

// methodLeaderAPI carries one leader-only API request to the leader.
const methodLeaderAPI = "api.leader"

// maxLeaderAPIBody bounds a forwarded request or answer body: these
// requests are small administrative ones.
const maxLeaderAPIBody = 1 << 20

// forwardedHeaders are the request headers a forwarded request keeps.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Accept", "X-Request-Id"}

// leaderAPIRequest is a forwarded request on the wire.
type leaderAPIRequest struct {
	Method string              `json:"method"`
	URI    string              `json:"uri"` // path and query
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
}

// leaderAPIResponse is the leader handler's answer on the wire.
type leaderAPIResponse struct {
	Status int                 `json:"status"`
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
}

// serveLeaderAPI answers forwarded leader-only requests with this node's
// API handler, once it has one and only while it leads.
func (a *Agent) serveLeaderAPI(ctx context.Context, from string, body []byte) ([]byte, error) {
	var req leaderAPIRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, httpjson.BadRequest("bad_request", "a forwarded request that could not be read: %s", err.Error())
	}
	h := a.apiHandler.Load()
	if h == nil || a.node == nil || !a.node.IsLeader() {
		return nil, consensus.ErrNotLeader
	}
	r, err := http.NewRequestWithContext(ctx, req.Method, req.URI, bytes.NewReader(req.Body))
	if err != nil {
		return nil, httpjson.BadRequest("bad_request", "a forwarded request that could not be read: %s", err.Error())
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	r.Header.Set("X-Shoal-Forwarded", from)
	r.RemoteAddr = from
	rec := &recorder{header: http.Header{}}
	(*h).ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return json.Marshal(leaderAPIResponse{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()})
}

// ForwardToLeader serves r on the leader (api.Deps.OnLeader): the
// leader's answer, or consensus.ErrNoLeader / ErrLeaderUnreachable (not
// delivered) / ErrOutcomeUnknown.
func (a *Agent) ForwardToLeader(ctx context.Context, r *http.Request, body []byte) (status int, header http.Header, out []byte, err error) {
	leader, _ := a.node.Leader()
	if leader == "" {
		return 0, nil, nil, consensus.ErrNoLeader
	}
	req := leaderAPIRequest{Method: r.Method, URI: r.URL.RequestURI(), Header: map[string][]string{}, Body: body}
	for _, k := range forwardedHeaders {
		if vs := r.Header.Values(k); len(vs) > 0 {
			req.Header[k] = vs
		}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return 0, nil, nil, err
	}
	ans, err := a.peers.call(ctx, leader, methodLeaderAPI, b)
	if err != nil {
		return 0, nil, nil, err
	}
	var resp leaderAPIResponse
	if err := json.Unmarshal(ans, &resp); err != nil || resp.Status < 100 || resp.Status > 599 {
		return 0, nil, nil, consensus.ErrOutcomeUnknown.WithMessage("the leader's answer could not be read")
	}
	if len(resp.Body) > maxLeaderAPIBody {
		return 0, nil, nil, errors.New("the leader's answer is too large")
	}
	return resp.Status, resp.Header, resp.Body, nil
}

// recorder is the http.ResponseWriter a forwarded request is served into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(p) > maxLeaderAPIBody {
		return 0, fmt.Errorf("a forwarded answer over %d bytes", maxLeaderAPIBody)
	}
	return w.body.Write(p)
}
