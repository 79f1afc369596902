package logstream

import (
	"errors"
	"fmt"
	"time"

	"shoal/modules"
)

// Ops implements modules.RaftHandler.
func (l *Log) Ops() []byte { return []byte{opAppend, opConfigure, opDelete, opTrim, opCapped} }

// ApplyCommand applies one committed command. It is called from the FSM
// goroutine only. Disk writes happen outside Log.mu; the counters readers
// see are published under it afterwards, and waiting streams are woken by
// closing channels, so the state machine never waits for a reader.
//
// A command the store already holds (Raft replaying after a restart, at or
// below the store's applied index) changes the counters and the dedup
// table exactly as the first time, without writing. A malformed command
// or an unknown op is an error and changes nothing; a failed disk write
// is modules.ErrNodeFailure (the node stops applying; a restart recovers).
func (l *Log) ApplyCommand(cmd modules.Command) ([]byte, error) {
	l.init()
	var (
		res []byte
		err error
	)
	op, payload, maxLogs := cmd.Op, cmd.Payload, uint64(0)
	if op == opCapped {
		maxLogs, op, payload, err = decodeCapped(payload)
		if err != nil {
			return nil, fmt.Errorf("apply log command at raft index %d: %w", cmd.Index, err)
		}
	}
	cmd.Payload = payload
	switch op {
	case opAppend:
		var c appendCmd
		if c, err = decodeAppend(cmd.Payload); err == nil {
			if err = l.checkCap(c.log, maxLogs); err == nil {
				res, err = l.applyAppend(cmd, c)
			}
		}
	case opConfigure:
		var c configureCmd
		if c, err = decodeConfigure(cmd.Payload); err == nil {
			if err = l.checkCap(c.log, maxLogs); err == nil {
				err = l.applyConfigure(cmd, c)
			}
		}
	case opDelete:
		var name string
		if name, err = decodeDelete(cmd.Payload); err == nil {
			err = l.applyDelete(cmd, name)
		}
	case opTrim:
		var c trimCmd
		if c, err = decodeTrim(cmd.Payload); err == nil {
			err = l.applyTrim(cmd, c)
		}
	default:
		err = fmt.Errorf("op %d: %w", op, ErrUnknownOp)
	}
	if err != nil {
		if errors.Is(err, modules.ErrNodeFailure) {
			l.logger.Error("log store write failed; this node stops applying commands until it is restarted", "index", cmd.Index, "err", err)
		}
		return nil, fmt.Errorf("apply log command at raft index %d: %w", cmd.Index, err)
	}
	return res, nil
}

// checkCap refuses a command that would create log name when the cluster
// holds maxLogs logs already (0: no cap). It changes nothing.
func (l *Log) checkCap(name string, maxLogs uint64) error {
	if maxLogs == 0 || l.st.logs[name] != nil || uint64(len(l.st.logs)) < maxLogs {
		return nil
	}
	return ErrTooManyLogs.WithMessage("the cluster holds %d logs, its limit (--log-max-logs): delete one first", len(l.st.logs)).
		WithDetail("limit", maxLogs)
}

// applyAppend applies an opAppend.
func (l *Log) applyAppend(cmd modules.Command, c appendCmd) ([]byte, error) {
	st := l.st
	ls := st.logs[c.log]
	next := uint64(1)
	if ls != nil {
		next = ls.next
		c.log = ls.name // the dedup table shares the log's name, not the command's
	}
	res, batch := st.dedupe(c, next, unixNano(cmd.Time))
	if len(batch) == 0 {
		return encodeResult(res), nil
	}
	if ls == nil {
		var err error
		if ls, err = l.createLog(cmd.Index, c.log, limits{}); err != nil {
			return nil, err
		}
	}
	max := c.maxEntries
	if ls.lim.set&limitEntries != 0 {
		max = ls.lim.maxEntries // 0: no limit
	}
	newNext := ls.next + uint64(len(batch))
	newFirst := ls.first
	if max > 0 && newNext-newFirst > max {
		newFirst = newNext - max
	}
	if l.writes(ls, cmd.Index) {
		trim := uint64(0)
		if newFirst > ls.first {
			trim = newFirst
		}
		if _, err := ls.store.AppendTrim(cmd.Index, batch, trim); err != nil {
			return nil, fmt.Errorf("append to log %s: %w: %w", ls.name, modules.ErrNodeFailure, err)
		}
	}
	if err := l.advance(ls, newFirst, newNext, cmd.Index); err != nil {
		return nil, err
	}
	return encodeResult(res), nil
}

// applyConfigure applies an opConfigure: it creates the log if needed,
// sets its limits, and applies a lowered max_entries at once.
func (l *Log) applyConfigure(cmd modules.Command, c configureCmd) error {
	ls := l.st.logs[c.log]
	if ls == nil {
		var err error
		if ls, err = l.createLog(cmd.Index, c.log, c.lim); err != nil {
			return err
		}
	}
	l.mu.Lock()
	ls.lim = ls.lim.merge(c.lim)
	l.mu.Unlock()
	if c.lim.set&limitEntries != 0 && c.lim.maxEntries > 0 && ls.entries() > c.lim.maxEntries {
		return l.trimTo(cmd.Index, ls, ls.next-c.lim.maxEntries)
	}
	return nil
}

// applyTrim applies an opTrim: retention by bytes or age, decided by the
// leader. The newest entry is always kept, as by retention by count.
func (l *Log) applyTrim(cmd modules.Command, c trimCmd) error {
	ls := l.st.logs[c.log]
	if ls == nil || ls.created != c.created || ls.entries() == 0 {
		return nil // deleted (and maybe created again) since the leader looked
	}
	return l.trimTo(cmd.Index, ls, min(c.first, ls.last()))
}

// trimTo drops the entries of ls below first, if first is above its
// first index.
func (l *Log) trimTo(index uint64, ls *logState, first uint64) error {
	if first <= ls.first {
		return nil
	}
	if l.writes(ls, index) {
		if err := ls.store.Trim(index, first); err != nil {
			return fmt.Errorf("trim log %s: %w: %w", ls.name, modules.ErrNodeFailure, err)
		}
	}
	return l.advance(ls, first, ls.next, index)
}

// applyDelete applies an opDelete: the log leaves the state, its streams
// end, its remembered ids are forgotten and its directory is removed.
func (l *Log) applyDelete(cmd modules.Command, name string) error {
	st := l.st
	ls := st.logs[name]
	if ls == nil {
		return ErrLogNotFound.WithMessage("log %q does not exist", name)
	}
	l.mu.Lock()
	delete(st.logs, name)
	st.entries -= ls.entries()
	close(ls.notify)
	logs, entries := len(st.logs), st.entries
	l.mu.Unlock()
	st.forget(name)
	l.setGauges(logs, entries)
	if ls.store == nil {
		return nil
	}
	// The marker tells a restart from an older snapshot that this node
	// deleted the directory on purpose (see RestoreAt).
	if err := l.disk.markDeleted(ls); err != nil {
		return fmt.Errorf("delete log %s: %w: %w", name, modules.ErrNodeFailure, err)
	}
	if err := ls.store.Delete(); err != nil {
		return fmt.Errorf("delete log %s: %w: %w", name, modules.ErrNodeFailure, err)
	}
	return nil
}

// createLog adds an empty log created by the command at index, opening its
// directory (which a replay finds already there).
func (l *Log) createLog(index uint64, name string, lim limits) (*logState, error) {
	store, err := l.disk.open(name, index)
	if err != nil {
		return nil, fmt.Errorf("create log %s: %w: %w", name, modules.ErrNodeFailure, err)
	}
	// On a replay the store may hold this log's later commands already:
	// the counters start from the empty log all the same and follow the
	// replay up to the store.
	ls := &logState{name: name, created: index, first: 1, next: 1, lim: lim, store: store, notify: make(chan struct{})}
	l.mu.Lock()
	st := l.st
	st.logs[name] = ls
	close(st.created)
	st.created = make(chan struct{})
	logs := len(st.logs)
	l.mu.Unlock()
	l.m.logs.Set(float64(logs))
	return ls, nil
}

// writes reports whether the command at index must be written to the
// store of ls: not when the store already holds it (a replay) or when the
// log has no store.
func (l *Log) writes(ls *logState, index uint64) bool {
	return ls.store != nil && index > ls.store.Applied()
}

// advance publishes new counters of ls after the command at index and
// wakes its streams. Once the store is no longer ahead of the state
// machine, both must agree: a difference is a bug that would serve other
// entries than the other nodes, so the node stops.
func (l *Log) advance(ls *logState, first, next, index uint64) error {
	l.mu.Lock()
	st := l.st
	st.entries += (next - first) - ls.entries()
	ls.first, ls.next = first, next
	close(ls.notify)
	ls.notify = make(chan struct{})
	logs, entries := len(st.logs), st.entries
	l.mu.Unlock()
	l.setGauges(logs, entries)
	if ls.store != nil && ls.store.Applied() <= index {
		if ls.store.First() != first || ls.store.Next() != next {
			return fmt.Errorf("log %s: the store holds [%d, %d) but the state machine [%d, %d): %w",
				ls.name, ls.store.First(), ls.store.Next(), first, next, modules.ErrNodeFailure)
		}
	}
	return nil
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
