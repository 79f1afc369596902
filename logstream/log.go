package logstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"shoal/internal/sse"
	"shoal/modules"
)

func init() {
	modules.Register(modules.Info{
		ID:  "log",
		New: func() modules.Module { return new(Log) },
		NewConfig: func() modules.Config {
			c := DefaultConfig()
			return &c
		},
	})
}

// Log is the log module. Its zero value is ready for Provision.
//
// ApplyCommand, Snapshot and Restore run on the FSM goroutine and hold mu
// for writing only while they change the state; HTTP handlers and streams
// hold it for reading and never while writing to a client.
type Log struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	m      *metrics

	once sync.Once // initialises st

	mu sync.RWMutex
	st *state // replaced whole by Restore

	streams sse.Streams // open event streams, ended by Stop
}

func (l *Log) init() {
	l.once.Do(func() {
		l.st = newState()
		if l.logger == nil {
			l.logger = slog.New(slog.DiscardHandler)
		}
	})
}

// ID returns "log".
func (l *Log) ID() string { return "log" }

// Provision reads the configuration and registers the metrics. It starts
// nothing.
func (l *Log) Provision(host modules.Host) error {
	l.host = host
	l.logger = host.Logger()
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("log module: %w", err)
	}
	l.cfg = cfg
	m, err := newMetrics(host.Registerer())
	if err != nil {
		return fmt.Errorf("log module: %w", err)
	}
	l.m = m
	l.init()
	return nil
}

// Start does nothing: the module has no background work of its own.
func (l *Log) Start(ctx context.Context) error {
	l.init()
	return nil
}

// Stop ends every open stream and waits, bounded by ctx, until their
// handlers have returned. Streams opened afterwards are refused.
func (l *Log) Stop(ctx context.Context) error {
	l.init()
	l.streams.Stop()
	done := make(chan struct{})
	go func() {
		l.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop log streams: %w", ctx.Err())
	}
}

// Tag returns modules.TagLog.
func (l *Log) Tag() modules.Tag { return modules.TagLog }

// ApplyCommand applies one committed command. It is called from the FSM
// goroutine only; it holds the state's write lock for the length of one
// command and never blocks on readers or streams (it wakes them by closing
// channels). A malformed command or an unknown op is an error and changes
// nothing.
// Ops implements modules.RaftHandler.
func (l *Log) Ops() []byte { return []byte{opAppend} }

func (l *Log) ApplyCommand(cmd modules.Command) ([]byte, error) {
	l.init()
	switch cmd.Op {
	case opAppend:
		c, err := decodeAppend(cmd.Payload)
		if err != nil {
			return nil, fmt.Errorf("apply log command at raft index %d: %w", cmd.Index, err)
		}
		l.mu.Lock()
		res, appended, _ := l.st.apply(c, unixNano(cmd.Time))
		logs, entries := len(l.st.logs), l.st.entries
		l.mu.Unlock()
		if appended > 0 {
			l.setGauges(logs, entries)
		}
		return encodeResult(res), nil
	default:
		return nil, fmt.Errorf("apply log command at raft index %d: op %d: %w", cmd.Index, cmd.Op, ErrUnknownOp)
	}
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Snapshot freezes the state. It is called from the FSM goroutine and
// copies only slice headers (O(number of logs)).
func (l *Log) Snapshot() (modules.Snapshot, error) {
	l.init()
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.st.capture(), nil
}

// Restore replaces the whole state with a snapshot Persist wrote; an empty
// reader is the empty state. It decodes without holding the lock, then
// swaps the state and wakes every stream so it looks again. On error the
// state is unchanged.
func (l *Log) Restore(r io.Reader) error {
	l.init()
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.st
	l.st = st
	old.wakeAll()
	logs, entries := len(st.logs), st.entries
	l.mu.Unlock()
	l.setGauges(logs, entries)
	return nil
}

func (l *Log) setGauges(logs, entries int) {
	if l.m == nil {
		return
	}
	l.m.logs.Set(float64(logs))
	l.m.entries.Set(float64(entries))
}

// Status is the module's section of GET /v1/status.
type Status struct {
	Logs    int `json:"logs"`
	Entries int `json:"entries"`
}

// Status returns the number of logs and retained entries on this node.
func (l *Log) Status() any {
	l.init()
	l.mu.RLock()
	defer l.mu.RUnlock()
	return Status{Logs: len(l.st.logs), Entries: l.st.entries}
}

var (
	_ modules.Module         = (*Log)(nil)
	_ modules.Router         = (*Log)(nil)
	_ modules.RaftHandler    = (*Log)(nil)
	_ modules.StatusReporter = (*Log)(nil)
)
