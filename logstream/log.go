package logstream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"shoal/internal/sse"
	"shoal/logstream/segment"
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
// ApplyCommand, SnapshotAt and RestoreAt run on the FSM goroutine and hold
// mu for writing only while they publish counters or swap the state;
// HTTP handlers and streams hold it for reading and never while reading
// the disk or writing to a client.
type Log struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	m      *metrics

	once sync.Once // initialises st

	mu sync.RWMutex
	st *state // replaced whole by RestoreAt

	disk  *disk
	cache *segment.Cache
	sm    *segment.Metrics

	streams sse.Streams // open event streams, ended by Stop

	stopRetention context.CancelFunc
	retentionDone chan struct{}
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

// Provision reads the configuration, registers the metrics and prepares
// the data directory (removing what an interrupted delete or install
// left). It starts nothing.
func (l *Log) Provision(host modules.Host) error {
	l.host = host
	l.logger = host.Logger()
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("log module: %w", err)
	}
	l.cfg = cfg
	l.sm = new(segment.Metrics)
	if cfg.ReadCacheBytes > 0 {
		l.cache = segment.NewCache(cfg.ReadCacheBytes)
	}
	sc := cfg.segmentConfig()
	sc.Cache, sc.Metrics, sc.Logger = l.cache, l.sm, l.logger
	l.disk = newDisk(host.DataDir(), sc)
	if err := l.disk.init(); err != nil {
		return fmt.Errorf("log module: %w", err)
	}
	m, err := newMetrics(host.Registerer(), l.sm, l.cache)
	if err != nil {
		return fmt.Errorf("log module: %w", err)
	}
	l.m = m
	l.init()
	return nil
}

// Start starts the leader's retention loop (retention by bytes and age)
// and prunes snapshot directories a crash may have left.
func (l *Log) Start(ctx context.Context) error {
	l.init()
	if err := l.disk.pruneSnapshots(); err != nil {
		l.logger.Warn("cannot prune old log snapshots", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l.stopRetention = cancel
	l.retentionDone = make(chan struct{})
	go l.retentionLoop(ctx)
	return nil
}

// Stop ends every open stream and the retention loop and waits, bounded
// by ctx, until they have returned. Streams opened afterwards are
// refused. The stores stay open: Raft may apply commands until the node
// shuts it down after its modules.
func (l *Log) Stop(ctx context.Context) error {
	l.init()
	l.streams.Stop()
	if l.stopRetention != nil {
		l.stopRetention()
	}
	done := make(chan struct{})
	go func() {
		l.streams.Wait()
		if l.retentionDone != nil {
			<-l.retentionDone
		}
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

func (l *Log) setGauges(logs int, entries uint64) {
	if l.m == nil {
		return
	}
	l.m.logs.Set(float64(logs))
	l.m.entries.Set(float64(entries))
}

// Status is the module's section of GET /v1/status.
type Status struct {
	Logs    int    `json:"logs"`
	Entries uint64 `json:"entries"`
	// Bytes and Segments are the size and number of this node's segment
	// files.
	Bytes    int64 `json:"bytes"`
	Segments int64 `json:"segments"`
}

// Status returns the number of logs and retained entries on this node.
func (l *Log) Status() any {
	l.init()
	l.mu.RLock()
	defer l.mu.RUnlock()
	s := Status{Logs: len(l.st.logs), Entries: l.st.entries}
	if l.sm != nil {
		s.Bytes, s.Segments = l.sm.DiskBytes.Load(), l.sm.Segments.Load()
	}
	return s
}

var (
	_ modules.Module             = (*Log)(nil)
	_ modules.Router             = (*Log)(nil)
	_ modules.RaftHandler        = (*Log)(nil)
	_ modules.IndexedSnapshotter = (*Log)(nil)
	_ modules.StatusReporter     = (*Log)(nil)
)
