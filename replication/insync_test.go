package replication

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"shoal/modules"
)

func TestSyncState_Rules(t *testing.T) {
	three := syncState{leader: "a", inSync: []string{"a", "b", "c"}}
	tests := []struct {
		name    string
		from    syncState
		cmd     command
		want    syncState
		wantErr error
	}{
		{"first claim founds the set", syncState{}, command{op: opClaim, node: "a"}, syncState{leader: "a", inSync: []string{"a"}}, nil},
		{"member claims", three, command{op: opClaim, node: "b"}, syncState{leader: "b", inSync: []string{"a", "b", "c"}}, nil},
		{"outsider's claim refused", syncState{leader: "a", inSync: []string{"a"}}, command{op: opClaim, node: "b"}, syncState{leader: "a", inSync: []string{"a"}}, ErrNotInSync},
		{"leader adds", syncState{leader: "a", inSync: []string{"a"}}, command{op: opAdd, leader: "a", node: "c"}, syncState{leader: "a", inSync: []string{"a", "c"}}, nil},
		{"add is idempotent", three, command{op: opAdd, leader: "a", node: "b"}, three, nil},
		{"leader removes", three, command{op: opRemove, leader: "a", node: "b"}, syncState{leader: "a", inSync: []string{"a", "c"}}, nil},
		{"stale leader's remove ignored", three, command{op: opRemove, leader: "b", node: "c"}, three, errStaleLeader},
		{"stale leader's add ignored", syncState{leader: "a", inSync: []string{"a"}}, command{op: opAdd, leader: "b", node: "b"}, syncState{leader: "a", inSync: []string{"a"}}, errStaleLeader},
		{"leader never leaves", three, command{op: opRemove, leader: "a", node: "a"}, three, errors.New("leader_in_sync")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.from.apply(tt.cmd)
			if (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReplication_ApplyAndRestore(t *testing.T) {
	m := new(Replication)
	for i, c := range commandSeeds()[:3] {
		if _, err := m.ApplyCommand(modules.Command{Index: uint64(i + 1), Op: c.op, Payload: encodeCommand(c)}); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	want := syncState{leader: "node0", inSync: []string{"node0", "node1"}}
	if got := m.state(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	other := new(Replication)
	if err := other.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := other.state(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %+v, want %+v", got, want)
	}
	if _, err := m.ApplyCommand(modules.Command{Op: 77}); !errors.Is(err, ErrUnknownOp) {
		t.Fatalf("unknown op: got %v, want ErrUnknownOp", err)
	}
}

func TestConfig_MinAcks(t *testing.T) {
	c := DefaultConfig()
	for servers, want := range map[int]int{0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2} {
		if got := c.minAcks(servers); got != want {
			t.Errorf("minAcks(%d) = %d, want %d", servers, got, want)
		}
	}
	c.MinAcks = 0
	if c.minAcks(5) != 0 {
		t.Errorf("async: minAcks = %d, want 0", c.minAcks(5))
	}
	if err := (Config{MinAcks: -2, AckTimeout: 1, MaxQueueBytes: 1 << 20, ScanInterval: time.Second}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("min acks -2: got %v", err)
	}
}
