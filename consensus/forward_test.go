package consensus_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"shoal/consensus"
	"shoal/internal/clusterport"
	"shoal/internal/httpjson"
	"shoal/internal/moduletest"
	"shoal/internal/peerrpc"
	"shoal/internal/testcluster"
	"shoal/modules"
)

// TestCluster_ForwardedWriteDoesNotWaitForAFrozenLeader is the second half
// of issue 9: a write forwarded to a leader that froze (docker pause) is
// answered as soon as the follower stops following that leader, not when
// the apply timeout (10 s) runs out, and its retry goes to the new leader.
func TestCluster_ForwardedWriteDoesNotWaitForAFrozenLeader(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	old := c.Leader()
	var rest []*testcluster.Node
	for _, n := range c.Nodes() {
		if n != old {
			rest = append(rest, n)
		}
	}
	f := rest[0]
	mustApply(t, f, "before")

	c.Pause(old.Index)
	// f still follows the frozen leader: the write is forwarded to it and
	// stays there until f gives up on that leader.
	_, err := apply(context.Background(), f, "during")
	if !errors.Is(err, consensus.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "leader changed") {
		t.Fatalf("first attempt: got %v, want outcome_unknown because the leader changed (not the apply timeout)", err)
	}
	if got := moduletest.MetricValue(t, f.Agent().Registry(), "shoal_raft_forward_batches_abandoned_total"); got < 1 {
		t.Fatalf("abandoned batches: %v, want at least 1", got)
	}
	// The retry, with the same value (appends are idempotent), is
	// committed by the new leader.
	mustApply(t, f, "during")
	nl := c.LeaderOf(rest...)
	t.Logf("%s froze; %s leads", old.Name, nl.Name)

	c.Resume(old.Index)
	for _, n := range c.Nodes() {
		waitValues(t, n, []string{"before", "during"})
	}
}

// TestCluster_LeaderRefusesForgedCommands sends the leader's forwarding
// call commands no module declares, and malformed batches, straight over
// the cluster port: each is refused and nothing reaches the log.
func TestCluster_LeaderRefusesForgedCommands(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	leader := c.Leader()
	mustApply(t, leader, "before")
	node := leader.Agent().Raft()
	// Effective, not last: the leader may add a commit notice meanwhile.
	lastBefore := node.Stats().EffectiveIndex

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port, err := clusterport.New(ln, clusterport.Config{NodeName: "forger"})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	cl := peerrpc.NewClient(port, peerrpc.ClientConfig{DecodeError: func(b []byte) error {
		e, err := httpjson.UnmarshalError(b)
		if err != nil {
			return err
		}
		return e
	}})
	defer cl.Close()
	call := func(body []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return cl.Call(ctx, leader.Name, leader.Agent().RaftAddr(), "consensus.apply", body)
	}

	for name, cmd := range map[string][]byte{
		"unknown tag": consensus.EncodeCommand(modules.Tag(200), 1, []byte("x")),
		"unknown op":  consensus.EncodeCommand(modules.TagTest, 99, []byte("x")),
		"core tag":    consensus.EncodeCommand(modules.TagNone, 1, nil),
	} {
		out, err := call(consensus.EncodeBatch([][]byte{cmd}))
		if err != nil {
			t.Fatalf("%s: the call failed: %v", name, err)
		}
		outs, err := consensus.DecodeOutcomes(out, errorCodec)
		if err != nil || len(outs) != 1 {
			t.Fatalf("%s: outcomes %v, %v", name, outs, err)
		}
		if !errors.Is(outs[0].Err, consensus.ErrUndeclaredCommand) || outs[0].Index != 0 {
			t.Fatalf("%s: got %+v, want undeclared_command and no index", name, outs[0])
		}
	}
	good := consensus.EncodeBatch([][]byte{consensus.EncodeCommand(modules.TagTest, opAppend, []byte("x"))})
	for name, body := range map[string][]byte{
		"truncated": good[:len(good)-2],
		"empty":     nil,
		"garbage":   []byte("\xff\xff\xff\xff\xff"),
	} {
		if _, err := call(body); !errors.Is(err, httpjson.BadRequest("bad_command", "")) {
			t.Fatalf("%s: got %v, want bad_command", name, err)
		}
	}
	if _, err := call(make([]byte, peerrpc.MaxFrame)); err == nil {
		t.Fatal("an oversize request was accepted")
	}
	if got := node.Stats().EffectiveIndex; got != lastBefore {
		t.Fatalf("the log grew from %d to %d: a refused command reached it", lastBefore, got)
	}
	waitValues(t, leader, []string{"before"})
}

// errorCodec is the agent's codec for forwarded errors.
var errorCodec = consensus.ErrorCodec{
	Encode: httpjson.MarshalError,
	Decode: httpjson.DecodeError,
}
