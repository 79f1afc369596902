package testcluster

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Elections records which node won which Raft term, as each node reports
// its own wins (consensus.Config.OnElected). Raft's first guarantee is
// that a term has at most one leader; Check reports every term that had
// two. It is safe for concurrent use.
type Elections struct {
	mu     sync.Mutex
	byTerm map[uint64][]string
	count  int
}

// NewElections returns an empty record.
func NewElections() *Elections { return &Elections{byTerm: map[uint64][]string{}} }

// Won records that node won term.
func (e *Elections) Won(node string, term uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	if !slices.Contains(e.byTerm[term], node) {
		e.byTerm[term] = append(e.byTerm[term], node)
	}
}

// Count is how many wins were recorded.
func (e *Elections) Count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count
}

// Check returns an error naming every term that more than one node won.
func (e *Elections) Check() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var bad []string
	terms := make([]uint64, 0, len(e.byTerm))
	for term := range e.byTerm {
		terms = append(terms, term)
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i] < terms[j] })
	for _, term := range terms {
		if winners := e.byTerm[term]; len(winners) > 1 {
			bad = append(bad, fmt.Sprintf("term %d was won by %s", term, strings.Join(winners, " and ")))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("two leaders in one term: %s", strings.Join(bad, "; "))
	}
	return nil
}
