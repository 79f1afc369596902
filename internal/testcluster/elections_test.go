package testcluster

import (
	"strings"
	"testing"
)

// TestElections_FlagsTwoLeadersInATerm is the checker's negative control:
// a history with two winners of one term must fail the check.
func TestElections_FlagsTwoLeadersInATerm(t *testing.T) {
	e := NewElections()
	e.Won("node0", 2)
	e.Won("node1", 3)
	e.Won("node2", 3)
	err := e.Check()
	if err == nil || !strings.Contains(err.Error(), "term 3 was won by node1 and node2") {
		t.Fatalf("got %v, want term 3 flagged", err)
	}
}

func TestElections_OneWinnerPerTermPasses(t *testing.T) {
	e := NewElections()
	e.Won("node0", 2)
	e.Won("node0", 2) // reported twice by the same node: one winner
	e.Won("node1", 3)
	if err := e.Check(); err != nil {
		t.Fatalf("got %v, want no violation", err)
	}
	if e.Count() != 3 {
		t.Fatalf("count %d, want 3", e.Count())
	}
}
