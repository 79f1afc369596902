package objectsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"shoal/internal/httpjson"
	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

// Producers on demand. Demand and producers are soft state, not Raft
// state: each node knows its own exact subscriptions and producer
// connections and reports them, whole, to the leader when they change
// (debounced), when the leader changes, and every few seconds; demand
// changes at connection rate, so whole reports stay cheap. The leader
// (leader.go) asks exactly one producer at a time for an object that has
// demand and no state, or whose dependencies moved, and drops objects
// nobody has wanted for --objectsync-linger.

// Peer methods.
const (
	methodReport  = "report"  // node -> leader: this node's demand and producers
	methodProduce = "produce" // leader -> node: send produce {id} to a producer connection
	methodOutcome = "outcome" // node -> leader: a producer answered
)

// report is a node's whole demand and producers.
type report struct {
	IDs       []string        `json:"ids"`
	Producers []producerEntry `json:"producers,omitempty"`
}

type producerEntry struct {
	Conn     uint64   `json:"conn"`
	Patterns []string `json:"patterns"`
}

type produceRequest struct {
	Conn uint64 `json:"conn"`
	ID   string `json:"id"`
}

// outcome kinds.
const (
	outcomeProduced = "produced"
	outcomeStall    = "stall"
	outcomeFailed   = "failed"
)

type outcomeReport struct {
	Conn uint64 `json:"conn"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

var (
	errNotLeader    = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "not_leader", Message: "this node does not lead", RetryAfter: time.Second}
	errProducerGone = httpjson.Errorf(http.StatusGone, "producer_gone", "the producer connection is gone")
)

// producers are this node's producer connections.
type producers struct {
	mu    sync.Mutex
	conns map[uint64]*wsClient // by connection id
	dirty atomic.Bool          // demand or producers changed since the last report
	// changed wakes the reporter when dirty is set (one token).
	changed chan struct{}
}

// markDirty records a change of this node's demand or producers and wakes
// the reporter.
func (p *producers) markDirty() {
	p.dirty.Store(true)
	signal(p.changed)
}

// signal puts the one token in ch, or leaves the one there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (p *producers) add(c *wsClient) {
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[uint64]*wsClient{}
	}
	p.conns[c.conn.ID()] = c
	p.mu.Unlock()
	p.markDirty()
}

func (p *producers) remove(c *wsClient) {
	p.mu.Lock()
	_, ok := p.conns[c.conn.ID()]
	delete(p.conns, c.conn.ID())
	p.mu.Unlock()
	if ok {
		p.markDirty()
	}
}

func (p *producers) get(conn uint64) *wsClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[conn]
}

// snapshot returns this node's report.
func (o *ObjectSync) snapshotReport() report {
	r := report{IDs: o.fo.demand()}
	o.prod.mu.Lock()
	for id, c := range o.prod.conns {
		r.Producers = append(r.Producers, producerEntry{Conn: id, Patterns: c.patterns()})
	}
	o.prod.mu.Unlock()
	sort.Slice(r.Producers, func(i, j int) bool { return r.Producers[i].Conn < r.Producers[j].Conn })
	return r
}

// demand lists the ids with an exact subscription on this node, sorted.
func (fo *fanout) demand() []string {
	fo.mu.Lock()
	out := make([]string, 0, len(fo.exact))
	for id := range fo.exact {
		out = append(out, id)
	}
	fo.mu.Unlock()
	sort.Strings(out)
	return out
}

// A node reports when its demand or producers changed, once a change has
// settled for reportSettle (a burst of subscriptions makes one report, not
// one each); when the leader changed, which it notices within
// reportLeaderCheck; and every reportRefresh, so a report lost to a leader
// change is not lost for long. An idle node wakes once per
// reportLeaderCheck.
const (
	reportSettle      = 20 * time.Millisecond
	reportLeaderCheck = time.Second
	reportRefresh     = 3 * time.Second
)

// reportLoop sends this node's report to the leader until Stop.
func (o *ObjectSync) reportLoop() {
	t := time.NewTicker(reportLeaderCheck)
	defer t.Stop()
	var lastLeader string
	var lastSent time.Time
	for {
		select {
		case <-o.ctx.Done():
			return
		case <-t.C:
		case <-o.prod.changed:
			select {
			case <-o.ctx.Done():
				return
			case <-time.After(reportSettle):
			}
		}
		leader, ok := o.host.Cluster().Leader()
		if !ok {
			continue
		}
		if !o.prod.dirty.Load() && leader.Name == lastLeader && time.Since(lastSent) < reportRefresh {
			continue
		}
		o.prod.dirty.Store(false)
		body, _ := json.Marshal(o.snapshotReport())
		if err := o.callLeader(methodReport, body); err != nil {
			o.prod.dirty.Store(true) // try again at the next check
			continue
		}
		lastLeader, lastSent = leader.Name, time.Now()
	}
}

// callLeader calls the leader's module (itself, without the network, when
// this node leads).
func (o *ObjectSync) callLeader(method string, body []byte) error {
	ctx, cancel := context.WithTimeout(o.ctx, 2*time.Second)
	defer cancel()
	if l, ok := o.host.Cluster().Leader(); ok && l.Local {
		_, err := o.HandlePeer(ctx, o.host.NodeName(), method, body)
		return err
	}
	_, err := o.host.Cluster().CallLeader(ctx, method, body)
	return err
}

// HandlePeer answers the module on other nodes: reports and outcomes (on
// the leader), produce requests (on the producer's node).
func (o *ObjectSync) HandlePeer(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	o.init()
	switch method {
	case methodReport:
		var r report
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, httpjson.BadRequest("bad_report", "report: %s", err.Error())
		}
		if !o.lead.receiveReport(from, r) {
			return nil, errNotLeader
		}
		return nil, nil
	case methodOutcome:
		var r outcomeReport
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, httpjson.BadRequest("bad_outcome", "outcome: %s", err.Error())
		}
		if !o.lead.receiveOutcome(from, r) {
			return nil, errNotLeader
		}
		return nil, nil
	case methodProduce:
		var r produceRequest
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, httpjson.BadRequest("bad_produce", "produce: %s", err.Error())
		}
		c := o.prod.get(r.Conn)
		if c == nil {
			return nil, errProducerGone
		}
		if err := c.conn.Send(protocol.Encode(protocol.Message{Type: protocol.TypeProduce, ID: r.ID})); err != nil {
			return nil, errProducerGone.WithMessage("the producer's queue is full or it is closing")
		}
		return nil, nil
	}
	return nil, httpjson.ErrNotFound.WithMessage("no peer method %q", method)
}

// registerProducer makes this connection a producer of patterns (added to
// those it registered before), at most --objectsync-max-subscriptions in
// all.
func (c *wsClient) registerProducer(patterns []string) error {
	c.prodMu.Lock()
	var added []string
	for _, p := range patterns {
		if !containsString(c.prodPatterns, p) && !containsString(added, p) {
			added = append(added, p)
		}
	}
	if limit := c.o.cfg.MaxSubscriptions; len(c.prodPatterns)+len(added) > limit {
		c.prodMu.Unlock()
		return ErrTooManySubscriptions.WithMessage("a connection produces at most %d patterns (--objectsync-max-subscriptions)", limit)
	}
	c.prodPatterns = append(c.prodPatterns, added...)
	c.prodMu.Unlock()
	c.o.prod.add(c)
	return nil
}

func (c *wsClient) patterns() []string {
	c.prodMu.Lock()
	defer c.prodMu.Unlock()
	return append([]string(nil), c.prodPatterns...)
}

func (c *wsClient) produces(id string) bool {
	c.prodMu.Lock()
	defer c.prodMu.Unlock()
	for _, p := range c.prodPatterns {
		if document.Match(p, id) {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// produced writes what a producer produced (from the connection's
// worker), then tells the leader.
func (c *wsClient) produced(ctx context.Context, m protocol.Message) error {
	if !c.produces(m.ID) {
		return ErrNotProducer.WithMessage("this connection registered no pattern matching %q", truncate(m.ID))
	}
	kind := outcomeFailed
	owner := "" // as a REST write: a master's claim wins
	if c.claims[m.ID] {
		owner = c.owner // a master that produces on demand (Seapig's onproduce)
	}
	var err error
	switch m.Type {
	case protocol.TypeProduced:
		var ver document.Version
		if ver, err = parseVersion(m.Version, "version"); err == nil {
			if _, err = c.o.set(ctx, m.ID, owner, ver, m.Object); err == nil {
				kind = outcomeProduced
			}
		}
	case protocol.TypeStall:
		var ver document.Version
		if ver, err = parseVersion(m.Version, "version"); err == nil {
			if err = c.o.stall(ctx, m.ID, owner, ver); err == nil {
				kind = outcomeStall
			}
		}
	}
	body, _ := json.Marshal(outcomeReport{Conn: c.conn.ID(), ID: m.ID, Kind: kind})
	if cerr := c.o.callLeader(methodOutcome, body); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		c.o.logger.Debug("report a production to the leader", "err", cerr)
	}
	if err != nil {
		return fmt.Errorf("%s of %q: %w", m.Type, truncate(m.ID), err)
	}
	return nil
}

// ErrNotProducer: produced, stall or failed from a connection that did not
// register a pattern matching the id.
var ErrNotProducer = httpjson.Errorf(http.StatusConflict, "not_producer", "this connection does not produce that id")
