//go:build e2e

package e2e

// Negative controls of the checkers: histories each checker must accept,
// and for each kind of bug it exists for, one it must reject. They need no
// Docker engine.

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"

	"shoal/client"
)

// op builds an operation with call and return times.
func op(clientID int, in, out any, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: clientID, Input: in, Output: out, Call: call, Return: ret}
}

func pub(id string) logInput       { return logInput{ID: id} }
func read(k uint64) logInput       { return logInput{Read: true, Index: k} }
func at(i uint64) logOutput        { return logOutput{Index: i} }
func saw(id string) logOutput      { return logOutput{ID: id} }
func acq(h string) semInput        { return semInput{Op: semAcquire, Holder: h, Limit: 2} }
func rel(h string) semInput        { return semInput{Op: semRelease, Holder: h, Limit: 2} }
func semRd() semInput              { return semInput{Op: semRead, Limit: 2} }
func granted(tok uint64) semOutput { return semOutput{Granted: true, Token: tok} }

func hold(h string, tok uint64) semHolder { return semHolder{Holder: h, Token: tok} }

func TestLogModel_Control(t *testing.T) {
	good := map[string][]porcupine.Operation{
		"sequential": {
			op(0, pub("a"), at(1), 0, 10), op(1, pub("b"), at(2), 20, 30),
			op(2, read(2), saw("b"), 40, 50), op(2, read(3), saw(""), 60, 70),
		},
		"concurrent publishes in either order": {
			op(0, pub("a"), at(2), 0, 50), op(1, pub("b"), at(1), 10, 40), op(2, read(1), saw("b"), 60, 70),
		},
		"a read concurrent with a publish sees it or not": {
			op(0, pub("a"), at(1), 0, 50), op(1, read(1), saw(""), 10, 20), op(2, read(1), saw("a"), 30, 40),
		},
		"an unknown publish may have happened": {
			op(0, pub("a"), logOutput{Unknown: true}, 0, pendingReturn), op(1, pub("b"), at(2), 10, 20),
		},
		"an unknown publish may not have happened": {
			op(0, pub("a"), logOutput{Unknown: true}, 0, pendingReturn), op(1, pub("b"), at(1), 10, 20),
		},
	}
	for name, ops := range good {
		if !porcupine.CheckOperations(logModel, ops) {
			t.Errorf("%s: rejected a linearizable history", name)
		}
	}
	bad := map[string][]porcupine.Operation{
		"lost write":       {op(0, pub("a"), at(1), 0, 10), op(1, read(1), saw(""), 20, 30)},
		"same index twice": {op(0, pub("a"), at(1), 0, 10), op(1, pub("b"), at(1), 20, 30)},
		"stale read":       {op(0, pub("a"), at(1), 0, 10), op(0, pub("b"), at(2), 20, 30), op(1, read(2), saw(""), 40, 50)},
		"gap":              {op(0, pub("a"), at(1), 0, 10), op(1, pub("b"), at(3), 20, 30)},
		"reordered":        {op(0, pub("a"), at(2), 0, 10), op(1, pub("b"), at(1), 20, 30)},
		"read of another id": {
			op(0, pub("a"), at(1), 0, 10), op(1, read(1), saw("x"), 20, 30),
		},
		"a read goes back in time": {
			op(0, pub("a"), at(1), 0, 100), op(1, read(1), saw("a"), 10, 20), op(2, read(1), saw(""), 30, 40),
		},
	}
	for name, ops := range bad {
		if porcupine.CheckOperations(logModel, ops) {
			t.Errorf("%s: accepted a history that is not linearizable", name)
		}
	}
}

func TestSemaphoreModel_Control(t *testing.T) {
	good := map[string][]porcupine.Operation{
		"two holders, then a release": {
			op(0, acq("a"), granted(10), 0, 10), op(1, acq("b"), granted(12), 0, 10),
			op(2, acq("c"), semOutput{}, 20, 30), op(0, rel("a"), semOutput{Released: true}, 40, 50),
			op(2, acq("c"), granted(15), 60, 70),
			op(3, semRd(), semOutput{Holders: []semHolder{hold("b", 12), hold("c", 15)}}, 80, 90),
		},
		"acquire again answers the same token": {
			op(0, acq("a"), granted(10), 0, 10), op(0, acq("a"), granted(10), 20, 30),
		},
		"a release that was never answered, then retried": {
			op(0, acq("a"), granted(10), 0, 10), op(0, rel("a"), semOutput{Unknown: true}, 20, pendingReturn),
			op(0, rel("a"), semOutput{}, 30, 40),
		},
		"an acquire that was never answered": {
			op(0, acq("a"), semOutput{Unknown: true}, 0, pendingReturn), op(1, acq("b"), granted(3), 10, 20),
			op(2, acq("c"), granted(4), 30, 40),
		},
		"an unanswered acquire holds a slot until it is cancelled": {
			op(0, acq("a"), semOutput{Unknown: true}, 0, pendingReturn),
			op(1, acq("b"), granted(3), 10, 20),
			op(3, semRd(), semOutput{Holders: []semHolder{hold("a", 2), hold("b", 3)}}, 25, 26),
			op(2, acq("c"), semOutput{}, 30, 40), // full: a's phantom holds the other slot
			op(0, acq("a"), granted(5), 50, 60),  // a's retry: the phantom was cancelled, a new grant
			op(2, acq("c"), semOutput{}, 70, 80),
		},
		"an unanswered acquire whose grant the retry finds": {
			op(0, acq("a"), semOutput{Unknown: true}, 0, pendingReturn),
			op(3, semRd(), semOutput{Holders: []semHolder{hold("a", 7)}}, 10, 20),
			op(0, acq("a"), granted(7), 30, 40),
		},
	}
	for name, ops := range good {
		if !porcupine.CheckOperations(semModel, ops) {
			t.Errorf("%s: rejected a linearizable history", name)
		}
	}
	bad := map[string][]porcupine.Operation{
		"three holders of two slots": {
			op(0, acq("a"), granted(1), 0, 10), op(1, acq("b"), granted(2), 0, 10), op(2, acq("c"), granted(3), 0, 10),
		},
		"token goes backwards": {
			op(0, acq("a"), granted(10), 0, 10), op(0, rel("a"), semOutput{Released: true}, 20, 30),
			op(1, acq("b"), granted(5), 40, 50),
		},
		"token reused": {
			op(0, acq("a"), granted(10), 0, 10), op(1, acq("b"), granted(10), 20, 30),
		},
		"acquire again answers another token": {
			op(0, acq("a"), granted(10), 0, 10), op(0, acq("a"), granted(11), 20, 30),
		},
		"full with a free slot": {
			op(0, acq("a"), granted(10), 0, 10), op(1, acq("b"), semOutput{}, 20, 30),
		},
		"released twice": {
			op(0, acq("a"), granted(10), 0, 10), op(0, rel("a"), semOutput{Released: true}, 20, 30),
			op(1, rel("a"), semOutput{Released: true}, 40, 50),
		},
		"read misses a holder": {
			op(0, acq("a"), granted(10), 0, 10), op(1, semRd(), semOutput{}, 20, 30),
		},
		"a phantom cannot make room for a third holder": {
			op(0, acq("x"), semOutput{Unknown: true}, 0, pendingReturn),
			op(0, acq("a"), granted(1), 10, 20), op(1, acq("b"), granted(2), 10, 20), op(2, acq("c"), granted(3), 30, 40),
		},
		"a read shows a holder nobody asked for": {
			op(0, acq("a"), granted(1), 0, 10), op(1, semRd(), semOutput{Holders: []semHolder{hold("a", 1), hold("z", 5)}}, 20, 30),
		},
		"a phantom's token below an earlier grant": {
			op(1, acq("b"), granted(9), 0, 10), op(0, acq("a"), semOutput{Unknown: true}, 20, pendingReturn),
			op(2, semRd(), semOutput{Holders: []semHolder{hold("a", 4), hold("b", 9)}}, 30, 40),
		},
	}
	for name, ops := range bad {
		if porcupine.CheckOperations(semModel, ops) {
			t.Errorf("%s: accepted a history that is not linearizable", name)
		}
	}
}

func TestCheckPublished_Control(t *testing.T) {
	entry := func(i uint64, id string) client.LogEntry { return client.LogEntry{Index: i, ID: id} }
	clients := []clientHistory{{acked: []ack{{"a", 1}, {"c", 3}}, pending: "d"}, {acked: []ack{{"b", 2}}}}
	good := []client.LogEntry{entry(1, "a"), entry(2, "b"), entry(3, "c")}
	if err := checkPublished(clients, good); err != nil {
		t.Fatalf("a correct history: %v", err)
	}
	if err := checkPublished(clients, append(slices.Clone(good), entry(4, "d"))); err != nil {
		t.Fatalf("a correct history with the pending id stored: %v", err)
	}
	for name, entries := range map[string][]client.LogEntry{
		"lost":          {entry(1, "a"), entry(2, "c")},
		"duplicate":     {entry(1, "a"), entry(2, "b"), entry(3, "b"), entry(4, "c")},
		"moved":         {entry(1, "b"), entry(2, "a"), entry(3, "c")},
		"invented":      {entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "x")},
		"gap":           {entry(1, "a"), entry(2, "b"), entry(4, "c")},
		"pending twice": {entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "d"), entry(5, "d")},
	} {
		if err := checkPublished(clients, entries); err == nil {
			t.Errorf("%s: checkPublished accepted %v", name, entries)
		}
	}
}

// TestElectionCheck_Control feeds the election check the lines raft logs:
// one winner per term passes, two winners of one term (issue 9) fail.
func TestElectionCheck_Control(t *testing.T) {
	line := func(term int) string {
		return `time=2026-12-05T10:51:16.970Z level=INFO msg="election won" node=shoal2 component=raft term=` +
			strconv.Itoa(term) + " tally=2\n"
	}
	good := map[string]string{
		"shoal1": line(2) + "time=... level=INFO msg=\"entering leader state\"\n" + line(5),
		"shoal2": line(3) + line(4),
		"shoal3": "time=... msg=\"election won\" term=x\n", // not a number: ignored
	}
	if err := checkOneLeaderPerTerm(electionWins(good)); err != nil {
		t.Fatalf("one winner per term: %v", err)
	}
	if got := len(electionWins(good)); got != 4 {
		t.Fatalf("found %d won terms, want 4", got)
	}
	bad := map[string]string{"shoal2": line(3), "shoal3": line(3) + line(4), "shoal1": line(4)}
	err := checkOneLeaderPerTerm(electionWins(bad))
	if err == nil || !strings.Contains(err.Error(), "term 3 won by shoal2 and shoal3") || !strings.Contains(err.Error(), "term 4 won by shoal1 and shoal3") {
		t.Fatalf("two winners in terms 3 and 4: got %v", err)
	}
}
