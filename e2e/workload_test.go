//go:build e2e

package e2e

// This file holds the clients that load the cluster while faults are
// injected, recording every operation for the checkers of history_test.go:
//
//   - logLoad: clients that each publish entries with ids, one at a time,
//     round-robin over the nodes, retrying a failed publish with the same
//     id on the next node until it is acknowledged; and a reader that
//     reads single indexes around the log's end with ?consistent=true.
//   - semLoad: workers that acquire a slot of a semaphore (without
//     waiting), hold it briefly and release it, retrying every answer that
//     may or may not have taken effect until they get one that says; and a
//     reader of the semaphore's holders with ?consistent=true.
//
// An operation that had to be retried is recorded once, from the call of
// its first attempt to the return of its last: an acquire or a publish
// with an id is idempotent, so the retries are one logical operation.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
)

const (
	// attemptTimeout bounds one request of a load client. A paused node
	// accepts connections but never answers; the client then moves on.
	attemptTimeout = 5 * time.Second
	// retryPause paces the retries of a failed attempt.
	retryPause = 50 * time.Millisecond
	// giveUpAfter bounds how long a client, once stopped, keeps retrying
	// the operation it is in.
	giveUpAfter = 30 * time.Second
)

// logLoad publishes to one log and reads it back.
type logLoad struct {
	nodes []*node
	log   string
	hist  *history
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu          sync.Mutex
	clients     []clientHistory
	failed      int           // failed attempts, each retried
	dups        int           // retries answered "duplicate": an earlier attempt had committed
	maxAttempts int           // most attempts one publish needed
	maxLatency  time.Duration // longest publish, first call to acknowledgement
	maxAcked    uint64        // highest acknowledged index
	reads       int
	readErrs    int
}

// startLogLoad starts clients publishers and one consistent reader on the
// log name, over nodes.
func startLogLoad(nodes []*node, name string, clients int) *logLoad {
	l := &logLoad{nodes: nodes, log: name, hist: newHistory(), stop: make(chan struct{}), clients: make([]clientHistory, clients)}
	for k := range clients {
		l.wg.Add(1)
		go l.publish(k)
	}
	l.wg.Add(1)
	go l.read(clients)
	return l
}

func (l *logLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// publish is client k: ids <log>-c<k>-00001, ... one at a time.
func (l *logLoad) publish(k int) {
	defer l.wg.Done()
	next := k // the node of the next attempt, round-robin
	for i := 1; !l.stopped(); i++ {
		id := fmt.Sprintf("%s-c%d-%05d", l.log, k, i)
		data := json.RawMessage(fmt.Sprintf(`{"client":%d,"i":%d}`, k, i))
		call := l.hist.now()
		start := time.Now()
		var giveUp time.Time
		for attempt := 1; ; attempt++ {
			n := l.nodes[next%len(l.nodes)]
			next++
			ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
			res, err := n.cl.Publish(ctx, l.log, id, data)
			cancel()
			if err == nil {
				ret := l.hist.now()
				l.hist.add(k, logInput{ID: id}, logOutput{Index: res.Index}, call, ret)
				l.mu.Lock()
				l.clients[k].acked = append(l.clients[k].acked, ack{id: id, index: res.Index})
				if res.Duplicate && attempt > 1 {
					l.dups++
				}
				l.maxAttempts = max(l.maxAttempts, attempt)
				l.maxLatency = max(l.maxLatency, time.Since(start))
				l.maxAcked = max(l.maxAcked, res.Index)
				l.mu.Unlock()
				break
			}
			l.mu.Lock()
			l.failed++
			l.mu.Unlock()
			if l.stopped() {
				if giveUp.IsZero() {
					giveUp = time.Now().Add(giveUpAfter)
				} else if time.Now().After(giveUp) {
					l.hist.add(k, logInput{ID: id}, logOutput{Unknown: true}, call, pendingReturn)
					l.mu.Lock()
					l.clients[k].pending = id
					l.mu.Unlock()
					return
				}
			}
			time.Sleep(retryPause)
		}
	}
}

// read is the reader: consistent reads of one index near the end of the
// log, on a random node. A read that fails had no effect and is dropped.
func (l *logLoad) read(clientID int) {
	defer l.wg.Done()
	for !l.stopped() {
		l.mu.Lock()
		k := max(int64(l.maxAcked)+rand.Int64N(4)-1, 1)
		l.mu.Unlock()
		n := l.nodes[rand.IntN(len(l.nodes))]
		call := l.hist.now()
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		page, err := n.cl.Read(ctx, l.log, uint64(k), 1, true)
		cancel()
		ret := l.hist.now()
		if errors.Is(err, client.ErrLogNotFound) {
			err, page = nil, client.ReadResult{} // the log does not exist yet: empty
		}
		l.mu.Lock()
		l.reads++
		if err != nil {
			l.readErrs++
		}
		l.mu.Unlock()
		if err == nil {
			out := logOutput{}
			if len(page.Entries) > 0 {
				out.ID = page.Entries[0].ID
				if page.Entries[0].Index != uint64(k) {
					out.ID = fmt.Sprintf("(index %d asked, %d answered)", k, page.Entries[0].Index)
				}
			}
			l.hist.add(clientID, logInput{Read: true, Index: uint64(k)}, out, call, ret)
		}
		time.Sleep(20 * time.Millisecond) // paces the reads
	}
}

// count returns how many publishes were acknowledged so far.
func (l *logLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.clients {
		n += len(c.acked)
	}
	return n
}

// progress waits until n more publishes have been acknowledged.
func (l *logLoad) progress(t *testing.T, what string, n int, timeout time.Duration) {
	t.Helper()
	target := l.count() + n
	eventually(t, timeout, what, func() error {
		if got := l.count(); got < target {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Errorf("%d publishes acknowledged, want %d (%d failed attempts so far)", got, target, l.failed)
		}
		return nil
	})
}

// halt stops the clients once each has its current publish acknowledged
// (or given up after giveUpAfter) and returns their histories.
func (l *logLoad) halt() []clientHistory {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]clientHistory, len(l.clients))
	for k, c := range l.clients {
		out[k] = clientHistory{acked: slices.Clone(c.acked), pending: c.pending}
	}
	return out
}

// summary describes the run of the load for the test log.
func (l *logLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	acked, pending := 0, 0
	for _, c := range l.clients {
		acked += len(c.acked)
		if c.pending != "" {
			pending++
		}
	}
	return fmt.Sprintf("%d publishes acknowledged by %d clients (%d failed attempts retried, %d retries found the entry committed already, at most %d attempts and %v for one publish, %d given up); %d consistent reads (%d failed)",
		acked, len(l.clients), l.failed, l.dups, l.maxAttempts, l.maxLatency.Round(time.Millisecond), pending, l.reads, l.readErrs)
}

// finish stops the load and checks it: every node holds the same log,
// every acknowledged publish is in it exactly once where it was
// acknowledged, nothing else is, and the recorded history of publishes
// and reads is linearizable. strict additionally requires that no client
// gave up: every publish succeeded within its retries.
func (l *logLoad) finish(t *testing.T, c *cluster, strict bool) {
	t.Helper()
	clients := l.halt()
	t.Logf("log %s: %s", l.log, l.summary())
	if strict {
		for k, h := range clients {
			if h.pending != "" {
				t.Errorf("client %d gave up publishing %s: a request failed beyond its retries", k, h.pending)
			}
		}
	}
	entries := c.sameLogEverywhere(t, l.log, 30*time.Second)
	if err := checkPublished(clients, entries); err != nil {
		t.Errorf("log %s (%d entries on every node) against what the clients were told: %v", l.log, len(entries), err)
	}
	checkLinearizable(t, c.artifacts, l.log, logModel, l.hist.operations())
}

// semLoad runs workers on one semaphore.
type semLoad struct {
	nodes []*node
	name  string
	limit int
	ttl   time.Duration
	hist  *history
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu         sync.Mutex
	grants     int
	full       int
	failed     int // attempts whose outcome was unknown, each retried
	gaveUp     int
	reads      int
	violations []string // holders beyond the limit seen by a read
}

// semTTL is the lease of every grant: longer than any step, so no lease
// expires while the model (which has no expiry) checks the history.
const semTTL = 3 * time.Minute

// startSemLoad creates the semaphore name with limit slots and starts
// workers on it plus one consistent reader.
func startSemLoad(t *testing.T, nodes []*node, name string, limit, workers int) *semLoad {
	t.Helper()
	s := &semLoad{nodes: nodes, name: name, limit: limit, ttl: semTTL, hist: newHistory(), stop: make(chan struct{})}
	eventually(t, 20*time.Second, "create semaphore "+name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		_, err := nodes[0].cl.CreateSemaphore(ctx, name, limit)
		return err
	})
	for k := range workers {
		s.wg.Add(1)
		go s.work(k)
	}
	s.wg.Add(1)
	go s.read(workers)
	return s
}

func (s *semLoad) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// work is worker k, holder "<name>-w<k>": acquire, hold 20-80 ms, release;
// or, when the semaphore is full, pause 10-40 ms and try again.
func (s *semLoad) work(k int) {
	defer s.wg.Done()
	holder := fmt.Sprintf("%s-w%d", s.name, k)
	next := k
	for !s.stopped() {
		out, ok := s.attempt(k, semInput{Op: semAcquire, Holder: holder, Limit: s.limit}, &next)
		if !ok {
			return
		}
		if !out.Granted {
			time.Sleep(time.Duration(10+rand.IntN(30)) * time.Millisecond) // the semaphore is full: pace the retries
			continue
		}
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond) // the work done under the slot
		if _, ok := s.attempt(k, semInput{Op: semRelease, Holder: holder, Limit: s.limit}, &next); !ok {
			return
		}
	}
}

// attempt performs one acquire or release, retried on the next node until
// an answer says what happened. Every attempt that may have had an effect
// is recorded: the one that answered with its outcome, and each failed one
// with an unknown outcome (a lost acquire may even hold a slot for a
// while, see semModel). ok is false when the worker gave up (it was
// stopped and giveUpAfter passed).
func (s *semLoad) attempt(k int, in semInput, next *int) (out semOutput, ok bool) {
	var giveUp time.Time
	for {
		n := s.nodes[*next%len(s.nodes)]
		*next++
		call := s.hist.now()
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		var err error
		definite := false
		switch in.Op {
		case semAcquire:
			var lease client.Lease
			lease, err = n.cl.AcquireSemaphore(ctx, s.name, in.Holder, client.AcquireOptions{TTL: s.ttl})
			switch {
			case err == nil:
				out, definite = semOutput{Granted: true, Token: lease.Token}, true
			case errors.Is(err, client.ErrSemaphoreFull):
				out, definite = semOutput{}, true
			}
		case semRelease:
			err = n.cl.ReleaseSemaphore(ctx, s.name, in.Holder)
			switch {
			case err == nil:
				out, definite = semOutput{Released: true}, true
			case errors.Is(err, client.ErrNotHolder):
				out, definite = semOutput{}, true
			}
		}
		cancel()
		if definite {
			s.hist.add(k, in, out, call, s.hist.now())
			s.mu.Lock()
			switch {
			case in.Op == semAcquire && out.Granted:
				s.grants++
			case in.Op == semAcquire:
				s.full++
			}
			s.mu.Unlock()
			return out, true
		}
		if !notSent(err) {
			s.hist.add(k, in, semOutput{Unknown: true}, call, pendingReturn)
		}
		s.mu.Lock()
		s.failed++
		s.mu.Unlock()
		if s.stopped() {
			if giveUp.IsZero() {
				giveUp = time.Now().Add(giveUpAfter)
			} else if time.Now().After(giveUp) {
				s.mu.Lock()
				s.gaveUp++
				s.mu.Unlock()
				return semOutput{}, false
			}
		}
		time.Sleep(retryPause)
	}
}

// notSent reports whether err proves that a request had no effect: the
// connection could not be made, or the node answered 503 no_leader, which
// it does only for a command it never submitted (docs/architecture.md).
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var e *client.Error
	return errors.As(err, &e) && e.Code == "no_leader"
}

// read is the reader: the holders, read with ?consistent=true on a random
// node. A read that fails had no effect and is dropped.
func (s *semLoad) read(clientID int) {
	defer s.wg.Done()
	for !s.stopped() {
		n := s.nodes[rand.IntN(len(s.nodes))]
		call := s.hist.now()
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		sem, err := n.cl.Semaphore(ctx, s.name, true)
		cancel()
		ret := s.hist.now()
		if err == nil {
			out := semOutput{}
			for _, h := range sem.Holders {
				out.Holders = append(out.Holders, semHolder{Holder: h.Holder, Token: h.Token})
			}
			slices.SortFunc(out.Holders, func(a, b semHolder) int { return strings.Compare(a.Holder, b.Holder) })
			s.hist.add(clientID, semInput{Op: semRead, Limit: s.limit}, out, call, ret)
			s.mu.Lock()
			s.reads++
			if len(sem.Holders) > s.limit || sem.Active > s.limit || sem.Limit != s.limit {
				s.violations = append(s.violations, fmt.Sprintf("%s answered limit %d, %d active, holders %v", n, sem.Limit, sem.Active, sem.Holders))
			}
			s.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond) // paces the reads
	}
}

// grantCount returns how many acquires were granted so far.
func (s *semLoad) grantCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants
}

// finish stops the workers (each releases what it holds), checks that no
// read saw more holders than the limit, that the history is linearizable
// (at most limit holders at any time, tokens increasing across grants, the
// same token for a repeated acquire), and deletes the semaphore.
func (s *semLoad) finish(t *testing.T, c *cluster) {
	t.Helper()
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	s.mu.Lock()
	t.Logf("semaphore %s (limit %d): %d grants, %d full answers, %d attempts retried, %d operations given up, %d consistent reads",
		s.name, s.limit, s.grants, s.full, s.failed, s.gaveUp, s.reads)
	for _, v := range s.violations {
		t.Errorf("semaphore %s: more holders than its limit: %s", s.name, v)
	}
	s.mu.Unlock()
	if s.grants == 0 {
		t.Errorf("semaphore %s: no acquire was granted", s.name)
	}
	checkLinearizable(t, c.artifacts, "semaphore-"+s.name, semModel, s.hist.operations())
	eventually(t, 20*time.Second, "delete semaphore "+s.name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		return s.nodes[0].cl.DeleteSemaphore(ctx, s.name)
	})
}
