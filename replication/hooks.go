package replication

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Hooks, as LavinMQ's: --replication-on-leader-elected runs when this node
// starts serving as replication leader (after its claim committed and its
// index is ready), --replication-on-leader-lost when it stops (Raft
// leadership lost, or the node stopping). A co-located application uses
// them to start or stop writing into the directory.
//
// Each runs as `/bin/sh -c CMD`, with the node's environment plus
// SHOAL_NODE, SHOAL_REPLICATION_EVENT ("elected" or "lost"),
// SHOAL_REPLICATION_TERM (the Raft term of the leadership: an elected and
// its lost carry the same term) and SHOAL_REPLICATION_DIR. Hooks run one at
// a time, in order, on their own goroutine, never blocking replication;
// each is killed after hookTimeout, and when the node stops (so a lost hook
// due to a shutdown may not run: the process is going away anyway). Their
// output is logged.

const (
	eventElected   = "elected"
	eventLost      = "lost"
	hookTimeout    = time.Minute
	maxQueuedHooks = 64
	maxHookOutput  = 4 << 10
)

type hookRun struct {
	event string
	term  uint64
}

// hook queues the hook of event, if one is configured. It never blocks.
func (m *Replication) hook(event string, term uint64) {
	cmd := m.cfg.OnLeaderElected
	if event == eventLost {
		cmd = m.cfg.OnLeaderLost
	}
	if cmd == "" {
		return
	}
	select {
	case m.hooks <- hookRun{event: event, term: term}:
	default:
		m.logger.Error("too many replication hooks queued: one was skipped", "event", event, "term", term)
	}
}

// runHooks runs queued hooks until ctx ends.
func (m *Replication) runHooks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-m.hooks:
			m.runHook(ctx, h)
		}
	}
}

func (m *Replication) runHook(ctx context.Context, h hookRun) {
	script := m.cfg.OnLeaderElected
	if h.event == eventLost {
		script = m.cfg.OnLeaderLost
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(),
		"SHOAL_NODE="+m.host.NodeName(),
		"SHOAL_REPLICATION_EVENT="+h.event,
		"SHOAL_REPLICATION_TERM="+strconv.FormatUint(h.term, 10),
		"SHOAL_REPLICATION_DIR="+m.cfg.Dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	started := time.Now()
	err := cmd.Run()
	text := out.String()
	if len(text) > maxHookOutput {
		text = text[:maxHookOutput] + "..."
	}
	if err != nil {
		m.logger.Error("replication hook failed", "event", h.event, "term", h.term, "err", err, "output", text)
		return
	}
	m.logger.Info("replication hook ran", "event", h.event, "term", h.term, "duration", time.Since(started), "output", text)
}
