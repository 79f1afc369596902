package consensus_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"sync"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// register is a test module: an append-only list of distinct values in the
// Raft FSM. Appending a value that is already there returns its position, so
// a client may retry a write whose outcome was unknown (leadership lost)
// without duplicating it. It exercises the FSM multiplexer, snapshots and
// forwarding without depending on a shipped module.
type register struct {
	host modules.Host
	mu   sync.RWMutex
	vals []string
}

const (
	opAppend byte = 1
	opFail   byte = 2 // a command the module rejects deterministically
)

var errRejected = httpjson.Errorf(http.StatusConflict, "rejected", "the test module rejected the command")

func init() {
	modules.Register(modules.Info{ID: "register", New: func() modules.Module { return new(register) }})
}

func (r *register) ID() string                      { return "register" }
func (r *register) Provision(h modules.Host) error  { r.host = h; return nil }
func (r *register) Start(ctx context.Context) error { return nil }
func (r *register) Stop(ctx context.Context) error  { return nil }
func (r *register) Tag() modules.Tag                { return modules.TagTest }

func (r *register) Ops() []byte { return []byte{opAppend, opFail} }

func (r *register) ApplyCommand(cmd modules.Command) ([]byte, error) {
	switch cmd.Op {
	case opAppend:
		r.mu.Lock()
		defer r.mu.Unlock()
		v := string(cmd.Payload)
		for i, have := range r.vals {
			if have == v {
				return []byte(fmt.Sprint(i + 1)), nil
			}
		}
		r.vals = append(r.vals, v)
		return []byte(fmt.Sprint(len(r.vals))), nil
	case opFail:
		return nil, errRejected
	default:
		return nil, fmt.Errorf("unknown op %d", cmd.Op)
	}
}

func (r *register) values() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]string(nil), r.vals...)
}

type registerSnap struct{ vals []string }

func (r *register) Snapshot() (modules.Snapshot, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return registerSnap{vals: r.vals[:len(r.vals):len(r.vals)]}, nil
}

func (s registerSnap) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, v := range s.vals {
		bw.Write(binary.AppendUvarint(nil, uint64(len(v))))
		bw.WriteString(v)
	}
	return bw.Flush()
}

func (s registerSnap) Release() {}

func (r *register) Restore(rd io.Reader) error {
	br := bufio.NewReader(rd)
	var vals []string
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		vals = append(vals, string(buf))
	}
	r.mu.Lock()
	r.vals = vals
	r.mu.Unlock()
	return nil
}

var (
	_ modules.Module      = (*register)(nil)
	_ modules.RaftHandler = (*register)(nil)
)
