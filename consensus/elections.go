package consensus

import (
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// electionLogger is raft's logger, watching for the one line in which
// raft says it won an election and for which term. hashicorp/raft reports
// the won term nowhere else: its leader observation carries no term, and
// reading the current term after it can already show a later one. The
// term of the line is exact, which a check that no term has two leaders
// needs. If raft ever renames the line, wins go unreported and the test
// cluster's check fails loudly ("no election observed"), never silently.
type electionLogger struct {
	hclog.Logger
	won func(term uint64)
}

// electionWonMsg is raft's message (raft.go, runCandidate).
const electionWonMsg = "election won"

func (l *electionLogger) Info(msg string, args ...interface{}) {
	if msg == electionWonMsg {
		if term, ok := uintArg(args, "term"); ok {
			l.won(term)
		}
	}
	l.Logger.Info(msg, args...)
}

// uintArg finds key's value in hclog's alternating key/value args.
func uintArg(args []interface{}, key string) (uint64, bool) {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == key {
			v, ok := args[i+1].(uint64)
			return v, ok
		}
	}
	return 0, false
}

// elected is called on raft's goroutine when this node wins term.
func (n *Node) elected(term uint64) {
	n.electionsWon.Inc()
	if n.cfg.OnElected != nil {
		n.cfg.OnElected(term)
	}
}

// leaderSignal tells waiters that the leader this node knows has changed:
// the channel from wait is closed at the next change.
type leaderSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newLeaderSignal() *leaderSignal { return &leaderSignal{ch: make(chan struct{})} }

// wait returns a channel closed at the next leader change.
func (s *leaderSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *leaderSignal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// watchLeaderChanges turns raft's leader observations into leaderSignal
// fires until the node stops. Observations may be dropped while one is
// pending (the channel holds one): a fire covers them all, and waiters
// read the current leader afterwards.
func (n *Node) watchLeaderChanges(obs chan raft.Observation) {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-obs:
			n.leaderChanged.fire()
		}
	}
}
