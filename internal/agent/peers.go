package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"shoal/consensus"
	"shoal/internal/faultnet"
	"shoal/internal/httpjson"
	"shoal/membership"
)

// peerClient talks to other nodes' HTTP APIs: it forwards writes and read
// index requests to the leader and asks non-voters how far they applied.
// Its transport dials through the partition gate in tests.
type peerClient struct {
	a         *Agent
	transport *http.Transport
	client    *http.Client
}

func newPeerClient(a *Agent) *peerClient {
	t := &http.Transport{
		DialContext:         a.cfg.Gate.DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	return &peerClient{a: a, transport: t, client: &http.Client{Transport: t}}
}

func (p *peerClient) close() { p.transport.CloseIdleConnections() }

// Internal endpoints served by the api package.
const (
	pathApply     = "/v1/internal/apply"
	pathReadIndex = "/v1/internal/read-index"
	pathApplied   = "/v1/internal/applied"
)

func (p *peerClient) httpAddrOf(name string) (string, error) {
	g := p.a.gossip.Load()
	if g == nil {
		return "", consensus.ErrLeaderUnreachable.WithMessage("gossip is not running yet")
	}
	m, ok := g.Member(name)
	if !ok || m.Meta.HTTPAddr == "" {
		return "", consensus.ErrLeaderUnreachable.WithMessage("the leader %s is not known to gossip yet", name)
	}
	return m.Meta.HTTPAddr, nil
}

func (p *peerClient) do(ctx context.Context, method, addr, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request to %s: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Shoal-Forwarded", "1")
	if p.a.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.a.cfg.Token)
	}
	return p.client.Do(req)
}

// notDelivered reports whether a failed request certainly did not reach
// the peer (it could not connect), so retrying it cannot apply it twice.
func notDelivered(err error) bool {
	var op *net.OpError
	return errors.Is(err, faultnet.ErrBlocked) || (errors.As(err, &op) && op.Op == "dial")
}

// ForwardApply implements consensus.Forwarder.
func (p *peerClient) ForwardApply(ctx context.Context, leaderID string, cmds [][]byte) ([]consensus.Outcome, error) {
	addr, err := p.httpAddrOf(leaderID)
	if err != nil {
		return nil, err
	}
	resp, err := p.do(ctx, http.MethodPost, addr, pathApply, consensus.EncodeBatch(cmds))
	if err != nil {
		if notDelivered(err) {
			return nil, consensus.ErrLeaderUnreachable
		}
		if ctx.Err() != nil {
			return nil, consensus.ErrOutcomeUnknown
		}
		return nil, consensus.ErrOutcomeUnknown.WithMessage("the connection to the leader failed mid-request; the write's outcome is unknown")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, consensus.ErrOutcomeUnknown.WithMessage("reading the leader's answer failed; the write's outcome is unknown")
	}
	if resp.StatusCode != http.StatusOK {
		// The whole batch was refused before any command was submitted.
		return nil, readError(resp, body)
	}
	outs, err := consensus.DecodeOutcomes(body)
	if err != nil {
		return nil, consensus.ErrOutcomeUnknown.WithMessage("the leader's answer could not be read (%s); the write's outcome is unknown", err.Error())
	}
	return outs, nil
}

// ForwardReadIndex implements consensus.Forwarder. Asking for a read index
// changes nothing, so any failure to get an answer is reported as
// ErrLeaderUnreachable, which consensus retries.
func (p *peerClient) ForwardReadIndex(ctx context.Context, leaderID string) (uint64, error) {
	addr, err := p.httpAddrOf(leaderID)
	if err != nil {
		return 0, err
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := p.getJSON(ctx, addr, pathReadIndex, &out); err != nil {
		var e *httpjson.Error
		if !errors.As(err, &e) {
			return 0, fmt.Errorf("%w: %w", consensus.ErrLeaderUnreachable, err)
		}
		return 0, err
	}
	return out.Index, nil
}

func (p *peerClient) getJSON(ctx context.Context, addr, path string, v any) error {
	resp, err := p.do(ctx, http.MethodGet, addr, path, nil)
	if err != nil {
		if notDelivered(err) {
			return consensus.ErrLeaderUnreachable
		}
		return fmt.Errorf("get %s from %s: %w", path, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", path, addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return readError(resp, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s from %s: %w", path, addr, err)
	}
	return nil
}

// readError rebuilds the peer's error, Retry-After included, so the client
// of this node is told when to retry just as the leader said.
func readError(resp *http.Response, body []byte) error {
	e := httpjson.ReadError(resp.StatusCode, body)
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}

// clusterView is the gossip view consensus follows (consensus.Cluster).
type clusterView struct{ a *Agent }

func (c clusterView) Members() []membership.Member {
	if g := c.a.gossip.Load(); g != nil {
		return g.Members()
	}
	return nil
}

func (c clusterView) Forget(name string) {
	if g := c.a.gossip.Load(); g != nil {
		g.Forget(name)
	}
}

// RaftAddr is the Raft address a member announces now; a member that
// left has none.
func (c clusterView) RaftAddr(name string) (string, bool) {
	g := c.a.gossip.Load()
	if g == nil {
		return "", false
	}
	m, ok := g.Member(name)
	if !ok || m.Status == membership.StatusLeft || m.Meta.RaftAddr == "" {
		return "", false
	}
	return m.Meta.RaftAddr, true
}

func (c clusterView) AppliedIndex(ctx context.Context, m membership.Member) (uint64, error) {
	var out struct {
		AppliedIndex uint64 `json:"applied_index"`
	}
	if err := c.a.peers.getJSON(ctx, m.Meta.HTTPAddr, pathApplied, &out); err != nil {
		return 0, err
	}
	return out.AppliedIndex, nil
}

func gateTransport(gate *faultnet.Gate) func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	return func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		return faultnet.WrapTransport(t, gate)
	}
}

var _ consensus.Forwarder = (*peerClient)(nil)
var _ consensus.Cluster = clusterView{}
