package replication

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"

	"shoal/internal/httpjson"
	"shoal/internal/wire"
	"shoal/modules"
)

// The Raft state of the module is small: which node is the replication
// leader, and the in-sync set, the nodes that hold every acknowledged
// write. Ops are part of the log format: never reuse a number.
const (
	// opClaim: node claims replication leadership. It succeeds if node is
	// in the in-sync set, or the set is empty (a new cluster: the set
	// becomes {node}).
	opClaim byte = 1
	// opAdd: the leader adds a caught-up follower to the in-sync set.
	opAdd byte = 2
	// opRemove: the leader removes a follower that made no ack progress.
	opRemove byte = 3
)

// errClaimRefused is the deterministic refusal of a claim by a node
// outside the in-sync set.
var errClaimRefused = ErrNotInSync

// errStaleLeader: an add or remove from a node that is no longer the
// replication leader; it changes nothing.
var errStaleLeader = httpjson.Errorf(http.StatusConflict, "stale_replication_leader", "the command comes from a node that is no longer the replication leader")

// syncState is the replicated state. It is changed only by apply, on the
// FSM goroutine, and copied for readers.
type syncState struct {
	leader string
	// term is the Raft term in which the leader's claim was appended: it
	// tells one leadership of a node from its next.
	term   uint64
	inSync []string // sorted, no duplicates
}

func (s syncState) clone() syncState {
	return syncState{leader: s.leader, term: s.term, inSync: slices.Clone(s.inSync)}
}

func (s syncState) has(name string) bool {
	_, ok := slices.BinarySearch(s.inSync, name)
	return ok
}

// command is a decoded Raft command.
type command struct {
	op     byte
	leader string // opAdd, opRemove: who sent it
	node   string
	term   uint64 // not encoded: the Raft term the command was appended in
}

func encodeCommand(c command) []byte {
	var b []byte
	if c.op != opClaim {
		b = wire.AppendBytes(b, c.leader)
	}
	return wire.AppendBytes(b, c.node)
}

func decodeCommand(op byte, payload []byte) (command, error) {
	c := command{op: op}
	d := wire.NewDecoder(payload)
	switch op {
	case opClaim:
	case opAdd, opRemove:
		c.leader = d.String("leader", modules.MaxNameLen*2)
	default:
		return c, fmt.Errorf("op %d: %w", op, ErrUnknownOp)
	}
	c.node = d.String("node", modules.MaxNameLen*2)
	if err := d.End(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrMalformedCommand, err)
	}
	if c.node == "" || (op != opClaim && c.leader == "") {
		return c, fmt.Errorf("%w: empty node name", ErrMalformedCommand)
	}
	return c, nil
}

// apply applies c to s, returning the new state. It is deterministic.
func (s syncState) apply(c command) (syncState, error) {
	n := s.clone()
	switch c.op {
	case opClaim:
		if len(n.inSync) == 0 {
			n.inSync = []string{c.node}
		} else if !n.has(c.node) {
			return s, errClaimRefused.WithMessage("node %s is not in the in-sync set %v and may lack acknowledged writes", c.node, s.inSync)
		}
		n.leader, n.term = c.node, c.term
	case opAdd:
		if c.leader != n.leader {
			return s, errStaleLeader
		}
		if !n.has(c.node) {
			n.inSync = append(n.inSync, c.node)
			slices.Sort(n.inSync)
		}
	case opRemove:
		if c.leader != n.leader {
			return s, errStaleLeader
		}
		if c.node == n.leader {
			return s, httpjson.Errorf(http.StatusConflict, "leader_in_sync", "the leader cannot leave the in-sync set")
		}
		if i, ok := slices.BinarySearch(n.inSync, c.node); ok {
			n.inSync = slices.Delete(n.inSync, i, i+1)
		}
	}
	return n, nil
}

// snapshot format: version byte 1, leader, uvarint term, count, names.
const snapshotVersion = 1

func (s syncState) encode() []byte {
	b := []byte{snapshotVersion}
	b = wire.AppendBytes(b, s.leader)
	b = wire.AppendUvarint(b, s.term)
	b = wire.AppendUvarint(b, uint64(len(s.inSync)))
	for _, n := range s.inSync {
		b = wire.AppendBytes(b, n)
	}
	return b
}

func decodeState(b []byte) (syncState, error) {
	var s syncState
	if len(b) == 0 {
		return s, nil
	}
	d := wire.NewDecoder(b)
	if v := d.Byte("version"); d.Err() == nil && v != snapshotVersion {
		d.Failf("version", "version %d, want %d", v, snapshotVersion)
	}
	s.leader = d.String("leader", modules.MaxNameLen*2)
	s.term = d.Uvarint("term")
	n := d.Count("in_sync", 2)
	for range n {
		name := d.String("node", modules.MaxNameLen*2)
		if d.Err() == nil && (name == "" || (len(s.inSync) > 0 && name <= s.inSync[len(s.inSync)-1])) {
			d.Failf("node", "names must be non-empty, sorted and distinct")
		}
		s.inSync = append(s.inSync, name)
	}
	if err := d.End(); err != nil {
		return syncState{}, fmt.Errorf("%w: %w", ErrMalformedSnapshot, err)
	}
	return s, nil
}

// Tag returns modules.TagReplication.
func (m *Replication) Tag() modules.Tag { return modules.TagReplication }

// Ops lists the accepted Raft ops.
func (m *Replication) Ops() []byte { return []byte{opClaim, opAdd, opRemove} }

// ApplyCommand applies one committed command on the FSM goroutine. It only
// swaps the state under a mutex and signals waiters; it never blocks.
func (m *Replication) ApplyCommand(cmd modules.Command) ([]byte, error) {
	m.init()
	c, err := decodeCommand(cmd.Op, cmd.Payload)
	if err != nil {
		return nil, fmt.Errorf("apply replication command at raft index %d: %w", cmd.Index, err)
	}
	c.term = cmd.Term
	m.stMu.Lock()
	next, err := m.st.apply(c)
	m.st = next
	m.stMu.Unlock()
	m.stateChanged()
	return nil, err
}

// Snapshot captures the state.
func (m *Replication) Snapshot() (modules.Snapshot, error) {
	m.init()
	m.stMu.Lock()
	defer m.stMu.Unlock()
	return snapshot(m.st.encode()), nil
}

// Restore replaces the state with a snapshot's.
func (m *Replication) Restore(r io.Reader) error {
	m.init()
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return fmt.Errorf("read replication snapshot: %w", err)
	}
	st, err := decodeState(b)
	if err != nil {
		return err
	}
	m.stMu.Lock()
	m.st = st
	m.stMu.Unlock()
	m.stateChanged()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(w io.Writer) error {
	_, err := io.Copy(w, bytes.NewReader(s))
	return err
}

func (s snapshot) Release() {}

// state returns a copy of the replicated state.
func (m *Replication) state() syncState {
	m.stMu.Lock()
	defer m.stMu.Unlock()
	return m.st.clone()
}
