package objectsync

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"shoal/objectsync/internal/document"
)

// leaderState is what the leader knows of the cluster's demand and
// producers, from the nodes' reports, and the productions it started. It
// is soft state: a new leader rebuilds it from fresh reports (every node
// reports when the leader changes) and, before dropping anything for lack
// of demand, waits a linger period from its own start.
type leaderState struct {
	mu          sync.Mutex
	active      bool
	since       time.Time
	reports     map[string]nodeReport
	pending     map[string]*production
	lastAsked   map[string]time.Time
	lastDemand  map[string]time.Time
	failedUntil map[string]map[string]time.Time // id -> producer -> excluded until
	failures    map[string]int                  // id -> failures in a row
	asks, drops int
	// changed wakes the production loop when what it plans from changed
	// (one token; see notePlanInput).
	changed chan struct{}
	// produceTimeout is --objectsync-produce-timeout.
	produceTimeout time.Duration
}

type nodeReport struct {
	ids       map[string]bool
	producers []producerEntry
}

// production is one producer asked for one object.
type production struct {
	node     string
	conn     uint64
	deadline time.Time
	seq      uint64 // the object's state when asked (0: none)
}

func producerKey(node string, conn uint64) string { return node + "/" + itoa64(conn) }

func itoa64(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (l *leaderState) start(now time.Time, produceTimeout time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active, l.since, l.produceTimeout = true, now, produceTimeout
	l.reports, l.pending = map[string]nodeReport{}, map[string]*production{}
	l.lastAsked, l.lastDemand = map[string]time.Time{}, map[string]time.Time{}
	l.failedUntil, l.failures = map[string]map[string]time.Time{}, map[string]int{}
}

func (l *leaderState) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active = false
	l.reports, l.pending = nil, nil
}

func (l *leaderState) receiveReport(from string, r report) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return false
	}
	ids := make(map[string]bool, len(r.IDs))
	for _, id := range r.IDs {
		ids[id] = true
	}
	l.reports[from] = nodeReport{ids: ids, producers: r.Producers}
	l.notePlanInput()
	return true
}

func (l *leaderState) receiveOutcome(from string, r outcomeReport) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return false
	}
	p := l.pending[r.ID]
	key := producerKey(from, r.Conn)
	l.notePlanInput()
	switch {
	case p == nil || producerKey(p.node, p.conn) != key:
		// Not the production we wait for (late, or unsolicited): a
		// produced state is in the log anyway.
	case r.Kind == outcomeProduced:
		delete(l.pending, r.ID)
		delete(l.failures, r.ID)
		delete(l.failedUntil, r.ID)
	case r.Kind == outcomeStall:
		p.deadline = time.Now().Add(l.produceTimeout)
	default:
		l.failLocked(r.ID, key, time.Now())
		delete(l.pending, r.ID)
	}
	return true
}

// failLocked excludes a producer from producing id for a back-off that
// doubles with each failure in a row (100ms to 5s).
func (l *leaderState) failLocked(id, key string, now time.Time) {
	l.failures[id]++
	backoff := min(100*time.Millisecond<<min(l.failures[id]-1, 6), 5*time.Second)
	if l.failedUntil[id] == nil {
		l.failedUntil[id] = map[string]time.Time{}
	}
	l.failedUntil[id][key] = now.Add(backoff)
}

// ask is a produce request to send.
type ask struct {
	node string
	conn uint64
	id   string
}

// The leader plans (asks producers, drops what nobody wants) when
// something it plans from changed: a node's report, a producer's outcome,
// a committed command. It plans at most once per productionInterval, and
// again after it while a production is pending or an ask waits for its
// time (a back-off, the re-production interval). Otherwise only every
// productionIdle, for what changes with time alone (a linger running out,
// a producer's node dying): an idle leader does not wake 20 times a
// second.
const (
	productionInterval = 50 * time.Millisecond
	productionIdle     = time.Second
)

// notePlanInput wakes the production loop; it never blocks.
func (l *leaderState) notePlanInput() { signal(l.changed) }

// productionLoop runs while this node leads: it asks producers for the
// objects that need producing and drops the objects nobody wants.
func (o *ObjectSync) productionLoop(ctx context.Context) {
	idle := time.NewTimer(0)
	defer idle.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
		case <-o.lead.changed:
		}
		asks, drops, busy := o.plan(time.Now())
		for _, a := range asks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.sendAsk(ctx, a)
			}()
		}
		for _, id := range drops {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := o.host.Raft().ApplyOnLeader(actx, opDelete, encodeID(id))
			cancel()
			if err != nil {
				o.logger.Debug("drop an object nobody wants", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(productionInterval):
		}
		if busy {
			o.lead.notePlanInput()
		}
		idle.Reset(min(productionIdle, max(o.cfg.Linger/4, productionInterval)))
	}
}

func (o *ObjectSync) sendAsk(ctx context.Context, a ask) {
	body, _ := json.Marshal(produceRequest{Conn: a.conn, ID: a.id})
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	if a.node == o.host.NodeName() {
		_, err = o.HandlePeer(cctx, a.node, methodProduce, body)
	} else {
		_, err = o.host.Cluster().Call(cctx, a.node, methodProduce, body)
	}
	if err == nil {
		return
	}
	o.lead.mu.Lock()
	defer o.lead.mu.Unlock()
	if p := o.lead.pending[a.id]; p != nil && p.node == a.node && p.conn == a.conn {
		o.lead.failLocked(a.id, producerKey(a.node, a.conn), time.Now())
		delete(o.lead.pending, a.id)
	}
}

// plan decides, at now, which producers to ask and which objects to drop;
// busy says a later plan has work that waits only for time (a pending
// production's deadline, a back-off, the re-production interval).
func (o *ObjectSync) plan(now time.Time) (_ []ask, _ []string, busy bool) {
	alive := map[string]bool{o.host.NodeName(): true}
	for _, s := range o.host.Cluster().Servers() {
		if s.Alive {
			alive[s.Name] = true
		}
	}
	l := &o.lead
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return nil, nil, false
	}
	defer func() { busy = busy || len(l.pending) > 0 }()
	demand := map[string]bool{}
	type prod struct {
		node string
		e    producerEntry
	}
	var prods []prod
	live := map[string]bool{}
	for node, r := range l.reports {
		if !alive[node] {
			delete(l.reports, node)
			continue
		}
		for id := range r.ids {
			demand[id] = true
		}
		for _, e := range r.producers {
			prods = append(prods, prod{node, e})
			live[producerKey(node, e.Conn)] = true
		}
	}
	sort.Slice(prods, func(i, j int) bool {
		return producerKey(prods[i].node, prods[i].e.Conn) < producerKey(prods[j].node, prods[j].e.Conn)
	})
	ids := make([]string, 0, len(demand))
	for id := range demand {
		ids = append(ids, id)
		l.lastDemand[id] = now
	}
	sort.Strings(ids)

	o.mu.RLock()
	defer o.mu.RUnlock()
	st := o.st
	var asks []ask
	for _, id := range ids {
		if strings.HasPrefix(id, reservedPrefix) {
			continue // introspection objects are not produced
		}
		obj := st.objects[id]
		// A master keeps its object, unless it also produces it (Seapig's
		// masters with onproduce): then only it is asked.
		onlyKey := ""
		if owner := st.claims[id]; owner != "" {
			onlyKey = ownerConn(owner)
		}
		if p := l.pending[id]; p != nil {
			switch {
			case obj != nil && obj.seq != p.seq && obj.stalled:
				// Stalled: the producer works on it; its deadline runs on.
				p.seq = obj.seq
				continue
			case obj != nil && obj.seq != p.seq:
				delete(l.pending, id) // produced
			case now.After(p.deadline) || !live[producerKey(p.node, p.conn)]:
				l.failLocked(id, producerKey(p.node, p.conn), now)
				delete(l.pending, id)
			default:
				continue
			}
		}
		// A stalled object is asked for again after a produce timeout.
		stalledTooLong := obj != nil && obj.stalled && now.Sub(time.Unix(0, obj.updated)) > o.cfg.ProduceTimeout
		if obj != nil && !depsMoved(st, obj) && !stalledTooLong {
			continue
		}
		if now.Sub(l.lastAsked[id]) < o.cfg.MinReproduceInterval {
			busy = true
			continue // coalesced: asked again at the next plan past the interval
		}
		var best *prod
		bestExact := false
		for i := range prods {
			p := &prods[i]
			key := producerKey(p.node, p.e.Conn)
			if onlyKey != "" && key != onlyKey {
				continue
			}
			if until, ok := l.failedUntil[id][key]; ok && now.Before(until) {
				busy = true
				continue
			}
			exact, match := false, false
			for _, pat := range p.e.Patterns {
				if pat == id {
					exact, match = true, true
				} else if document.Match(pat, id) {
					match = true
				}
			}
			if match && (best == nil || exact && !bestExact) {
				best, bestExact = p, exact
			}
		}
		if best == nil {
			continue
		}
		seq := uint64(0)
		if obj != nil {
			seq = obj.seq
		}
		l.pending[id] = &production{node: best.node, conn: best.e.Conn, deadline: now.Add(o.cfg.ProduceTimeout), seq: seq}
		l.lastAsked[id] = now
		l.asks++
		asks = append(asks, ask{node: best.node, conn: best.e.Conn, id: id})
	}
	// Linger: drop what nobody has wanted for a while, unless a master
	// holds it. A new leader first waits a whole linger period.
	var drops []string
	if now.Sub(l.since) > o.cfg.Linger {
		for id, obj := range st.objects {
			if demand[id] || st.claims[id] != "" {
				continue
			}
			last := latest(l.lastDemand[id], l.since, time.Unix(0, obj.updated))
			if now.Sub(last) > o.cfg.Linger {
				drops = append(drops, id)
				l.drops++
			}
		}
		sort.Strings(drops)
	}
	for id := range l.lastDemand {
		if !demand[id] && st.objects[id] == nil {
			delete(l.lastDemand, id)
			delete(l.lastAsked, id)
		}
	}
	return asks, drops, busy
}

func latest(a, b, c time.Time) time.Time {
	m := a
	if b.After(m) {
		m = b
	}
	if c.After(m) {
		m = c
	}
	return m
}

// depsMoved reports whether a dependency that obj's version declares moved
// past the recorded version: a named counter, or another object's version.
func depsMoved(st *state, obj *object) bool {
	for _, name := range obj.ver.Deps() {
		recorded, _ := obj.ver.Dep(name)
		var cur document.Version
		if n, ok := st.deps[name]; ok {
			cur = document.NumberVersion(float64(n))
		} else if dep := st.objects[name]; dep != nil {
			cur = dep.ver
		} else {
			continue
		}
		if c, ok := document.Compare(cur, recorded); ok && c > 0 {
			return true
		}
	}
	return false
}
