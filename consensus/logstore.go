package consensus

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	walmetrics "github.com/hashicorp/raft-wal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"shoal/internal/logging"
)

// The log stores Config.LogStore names.
const (
	// LogStoreWAL is hashicorp/raft-wal in Dir/wal: append-only segment
	// files with one fsync per appended batch, and a small bolt file
	// (wal-meta.db) for raft's stable keys and the segments' metadata.
	LogStoreWAL = "wal"
	// LogStoreBolt is raft-boltdb/v2 in Dir/raft.db: one B+tree file for
	// the log and the stable keys.
	LogStoreBolt = "bolt"
)

// What the stores keep in a node's Raft directory.
const (
	boltFile     = "raft.db"
	boltMigrated = "raft.db.migrated" // a bolt store already copied into the wal
	walDir       = "wal"
	walMigrating = "wal.migrating" // a migration in progress, or one cut short
)

// Migration tuning: entries are copied in batches of at most this many
// entries or bytes, one wal append (and fsync) each.
const (
	migrateBatchEntries = 4096
	migrateBatchBytes   = 4 << 20
)

// boltLockTimeout bounds the wait for raft.db's file lock: a second
// process on the same directory fails instead of hanging.
const boltLockTimeout = 5 * time.Second

// raft's stable keys (hashicorp/raft raft.go: keyCurrentTerm,
// keyLastVoteTerm, keyLastVoteCand), the only ones it writes. The first two
// are written with SetUint64, whose encoding differs between the stores
// (bolt big-endian, wal little-endian): they are copied as numbers.
var (
	stableUint64Keys = []string{"CurrentTerm", "LastVoteTerm"}
	stableBytesKeys  = []string{"LastVoteCand"}
)

// ErrWALPresent: the node is configured for the bolt log store but its Raft
// directory holds a wal. Its newest entries and its term are in the wal;
// raft.db, if any, holds an older log. Moving back from wal to bolt is not
// supported.
var ErrWALPresent = errors.New("the raft directory holds a wal log store: run with the wal log store (moving back to bolt is not supported)")

// ErrWALMissing: the node is configured for the wal log store, its bolt
// store was migrated (raft.db.migrated), but the wal is gone. Starting with
// an empty log would hide the loss.
var ErrWALMissing = errors.New("the raft directory's bolt store was migrated to a wal that is missing")

// ValidateLogStore reports an error unless kind names a log store.
func ValidateLogStore(kind string) error {
	switch kind {
	case LogStoreWAL, LogStoreBolt:
		return nil
	}
	return fmt.Errorf("raft log store %q: want %q or %q", kind, LogStoreWAL, LogStoreBolt)
}

// StoreOptions say which store OpenStores opens, and how.
type StoreOptions struct {
	// Kind is LogStoreWAL or LogStoreBolt.
	Kind string
	// WALSegmentSize is raft-wal's segment size; 0 means its default.
	WALSegmentSize int
	// Logger gets what a migration did; nil discards it.
	Logger *slog.Logger
	// Registerer, if set, gets the wal's metrics (shoal_raft_wal_*) until
	// Close.
	Registerer prometheus.Registerer
}

func (o StoreOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Stores are a node's Raft log store and stable store, both kept in one
// directory. Log and Stable are safe for concurrent use, as raft requires.
type Stores struct {
	// Kind is the store in use: LogStoreWAL or LogStoreBolt.
	Kind   string
	Log    raft.LogStore
	Stable raft.StableStore
	close  func() error
}

// Close closes the stores. Call it once, after raft has shut down.
func (s *Stores) Close() error { return s.close() }

// OpenStores opens the log and stable store of kind o.Kind in dir, which
// must exist, deciding by what it finds there:
//
//   - wal: dir/wal is opened, or created if dir holds no store. A bolt
//     store (dir/raft.db) without a wal is migrated first
//     (MigrateBoltToWAL). A raft.db beside a wal is what a migration cut
//     short after its commit leaves: it is renamed to raft.db.migrated. A
//     raft.db.migrated without a wal is refused (ErrWALMissing).
//   - bolt: dir/raft.db is opened, or created. A wal in dir is refused
//     (ErrWALPresent), before anything is created.
//
// A wal.migrating left by an interrupted migration is removed in both
// cases. OpenStores blocks for as long as a migration takes. It must not be
// called while another process or an open Stores uses dir.
func OpenStores(dir string, o StoreOptions) (*Stores, error) {
	if err := ValidateLogStore(o.Kind); err != nil {
		return nil, err
	}
	logger := o.logger()
	hasWAL, err := exists(filepath.Join(dir, walDir))
	if err != nil {
		return nil, err
	}
	hasBolt, err := exists(filepath.Join(dir, boltFile))
	if err != nil {
		return nil, err
	}
	if o.Kind == LogStoreBolt {
		if hasWAL {
			return nil, fmt.Errorf("raft directory %s: %w", dir, ErrWALPresent)
		}
		if removed, err := removeInterrupted(dir); err != nil {
			return nil, err
		} else if removed {
			logger.Warn("removed an interrupted migration to wal; staying on bolt", "dir", filepath.Join(dir, walMigrating))
		}
		return openBolt(filepath.Join(dir, boltFile))
	}
	switch {
	case hasWAL && hasBolt:
		if err := retireBolt(dir); err != nil {
			return nil, err
		}
		logger.Warn("a migration to wal was cut short after its commit: finished it", "renamed", boltFile+" → "+boltMigrated)
	case hasBolt:
		if _, err := MigrateBoltToWAL(dir, o); err != nil {
			return nil, err
		}
	case !hasWAL:
		if migrated, err := exists(filepath.Join(dir, boltMigrated)); err != nil {
			return nil, err
		} else if migrated {
			return nil, fmt.Errorf("raft directory %s: %w (%s is there, %s/ is not)", dir, ErrWALMissing, boltMigrated, walDir)
		}
	}
	if removed, err := removeInterrupted(dir); err != nil {
		return nil, err
	} else if removed {
		logger.Warn("removed a leftover migration directory", "dir", filepath.Join(dir, walMigrating))
	}
	return openWAL(filepath.Join(dir, walDir), o)
}

// Migration is what MigrateBoltToWAL did.
type Migration struct {
	// First and Last are the index range of the copied log, both 0 for an
	// empty one; Entries is how many entries that is.
	First, Last, Entries uint64
	// Term is raft's current term, copied with the other stable keys.
	Term uint64
	// StableKeys is how many of raft's stable keys were set and copied.
	StableKeys int
	// Discarded says that an interrupted earlier attempt was removed
	// first.
	Discarded bool
	Took      time.Duration
}

// MigrateBoltToWAL copies the bolt store dir/raft.db into a new wal,
// dir/wal: every log entry from its first index to its last, in batches,
// and raft's stable keys (current term, last vote). It builds the wal in
// dir/wal.migrating, fsyncs it, and renames it to dir/wal (the commit
// point); then it renames raft.db to raft.db.migrated, so the next start
// does not migrate again, and logs what it did.
//
// A crash at any point is safe: before the commit, raft.db is untouched
// and the next start removes wal.migrating and migrates again; after it,
// OpenStores finishes the rename. raft.db is only read. MigrateBoltToWAL
// blocks until the copy is done and must not run while anything else uses
// dir. o.Kind is ignored.
func MigrateBoltToWAL(dir string, o StoreOptions) (m Migration, err error) {
	start := time.Now()
	if has, err := exists(filepath.Join(dir, walDir)); err != nil {
		return m, err
	} else if has {
		return m, fmt.Errorf("migrate raft log in %s: it already has a %s/", dir, walDir)
	}
	if has, err := exists(filepath.Join(dir, boltFile)); err != nil {
		return m, err
	} else if !has {
		return m, fmt.Errorf("migrate raft log in %s: it has no %s", dir, boltFile)
	}
	if m.Discarded, err = removeInterrupted(dir); err != nil {
		return m, err
	}
	tmp := filepath.Join(dir, walMigrating)
	if err := buildWAL(tmp, filepath.Join(dir, boltFile), o, &m); err != nil {
		return m, fmt.Errorf("migrate raft log in %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDir)); err != nil {
		return m, fmt.Errorf("migrate raft log: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return m, fmt.Errorf("migrate raft log: %w", err)
	}
	if err := retireBolt(dir); err != nil {
		return m, err
	}
	m.Took = time.Since(start)
	o.logger().Info("migrated the raft log from bolt to wal",
		"entries", m.Entries, "first_index", m.First, "last_index", m.Last, "term", m.Term,
		"stable_keys", m.StableKeys, "redone_after_interruption", m.Discarded, "took", m.Took.Round(time.Millisecond),
		"wal", filepath.Join(dir, walDir), "old_store", filepath.Join(dir, boltMigrated))
	return m, nil
}

// buildWAL creates the wal dir from the bolt store at boltPath, closes
// both and fsyncs dir: every append fsynced its segment and every metadata
// change its bolt file, but the directory entries need one too.
func buildWAL(dir, boltPath string, o StoreOptions, m *Migration) (err error) {
	src, err := openBolt(boltPath)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, src.Close()) }()
	if err := os.Mkdir(dir, 0o750); err != nil {
		return fmt.Errorf("create the new wal: %w", err)
	}
	o.Registerer = nil // the node registers the metrics of the wal it runs on
	dst, err := openWAL(dir, o)
	if err != nil {
		return err
	}
	if err := copyStores(dst, src, m); err != nil {
		return errors.Join(err, dst.Close())
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("close the new wal: %w", err)
	}
	return syncDir(dir)
}

// copyStores copies src's log and stable keys into dst, which must be
// empty, and checks that dst ends up with the same index range and term.
func copyStores(dst, src *Stores, m *Migration) error {
	var err error
	if m.First, err = src.Log.FirstIndex(); err != nil {
		return fmt.Errorf("read first index: %w", err)
	}
	if m.Last, err = src.Log.LastIndex(); err != nil {
		return fmt.Errorf("read last index: %w", err)
	}
	if m.Last > 0 {
		m.Entries = m.Last - m.First + 1
	}
	batch := make([]*raft.Log, 0, min(m.Entries, migrateBatchEntries))
	size := 0
	for idx := m.First; m.Last > 0 && idx <= m.Last; idx++ {
		e := new(raft.Log)
		if err := src.Log.GetLog(idx, e); err != nil {
			return fmt.Errorf("read entry %d of %d..%d: %w", idx, m.First, m.Last, err)
		}
		batch = append(batch, e)
		size += len(e.Data) + len(e.Extensions)
		if len(batch) == migrateBatchEntries || size >= migrateBatchBytes || idx == m.Last {
			if err := dst.Log.StoreLogs(batch); err != nil {
				return fmt.Errorf("write entries %d..%d: %w", batch[0].Index, idx, err)
			}
			batch, size = batch[:0], 0
		}
	}
	for _, k := range stableUint64Keys {
		if err := copyKey(k, src.Stable.GetUint64, dst.Stable.SetUint64, &m.StableKeys); err != nil {
			return err
		}
	}
	for _, k := range stableBytesKeys {
		if err := copyKey(k, src.Stable.Get, dst.Stable.Set, &m.StableKeys); err != nil {
			return err
		}
	}
	return verifyCopy(dst, src, m)
}

// copyKey copies one stable key with get and set and counts it in copied;
// a key the bolt store never had is skipped.
func copyKey[V any](key string, get func([]byte) (V, error), set func([]byte, V) error, copied *int) error {
	v, err := get([]byte(key))
	if errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := set([]byte(key), v); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	*copied++
	return nil
}

// verifyCopy checks dst against src after a copy: same index range, same
// current term.
func verifyCopy(dst, src *Stores, m *Migration) error {
	first, err := dst.Log.FirstIndex()
	if err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	last, err := dst.Log.LastIndex()
	if err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if m.Last > 0 && (first != m.First || last != m.Last) {
		return fmt.Errorf("check the copy: the wal holds %d..%d, the bolt store %d..%d", first, last, m.First, m.Last)
	}
	if m.Term, err = dst.Stable.GetUint64([]byte(stableUint64Keys[0])); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	want, err := src.Stable.GetUint64([]byte(stableUint64Keys[0]))
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return fmt.Errorf("check the copy: %w", err)
	}
	if m.Term != want {
		return fmt.Errorf("check the copy: the wal's term is %d, the bolt store's %d", m.Term, want)
	}
	return nil
}

// openBolt opens (or creates) the bolt store at path.
func openBolt(path string) (*Stores, error) {
	opts := *bbolt.DefaultOptions
	opts.Timeout = boltLockTimeout
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &opts})
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", path, err)
	}
	return &Stores{Kind: LogStoreBolt, Log: s, Stable: s, close: s.Close}, nil
}

// openWAL opens (or creates) the wal in dir.
func openWAL(dir string, o StoreOptions) (*Stores, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create raft wal directory: %w", err)
	}
	// raft-wal v0.4.0's Close leaves its metadata database open: the
	// store keeps it to close it, or the next open in this process would
	// wait for its file lock forever.
	meta := &metadb.BoltMetaDB{}
	var collector walmetrics.Collector // nil: raft-wal's no-op collector
	var wc *walCollector
	if o.Registerer != nil {
		wc = newWALCollector()
		if err := o.Registerer.Register(wc); err != nil {
			return nil, fmt.Errorf("register raft wal metrics: %w", err)
		}
		collector = wc.stats
	}
	unregister := func() {
		if wc != nil {
			o.Registerer.Unregister(wc)
		}
	}
	w, err := wal.Open(dir,
		wal.WithMetaStore(meta),
		wal.WithSegmentFiler(newIndexlessSealFiler(dir)), // walfix.go
		wal.WithSegmentSize(o.WALSegmentSize),            // 0: raft-wal's default
		wal.WithLogger(logging.HCLogger(o.logger()).Named("wal")),
		wal.WithMetricsCollector(collector))
	if err != nil {
		unregister()
		return nil, errors.Join(fmt.Errorf("open raft wal %s: %w", dir, err), meta.Close())
	}
	return &Stores{Kind: LogStoreWAL, Log: &failStopLog{WAL: w}, Stable: w, close: func() error {
		err := errors.Join(w.Close(), meta.Close())
		unregister()
		return err
	}}, nil
}

// walCollector publishes raft-wal's own counters and gauges
// (wal.MetricDefinitions) as shoal_raft_wal_<name>_total and
// shoal_raft_wal_<name>. raft-wal updates them atomically from its writers;
// Collect reads a snapshot.
type walCollector struct {
	stats *walmetrics.AtomicCollector
	descs map[string]*prometheus.Desc
	kinds map[string]prometheus.ValueType
}

func newWALCollector() *walCollector {
	c := &walCollector{stats: walmetrics.NewAtomicCollector(wal.MetricDefinitions),
		descs: map[string]*prometheus.Desc{}, kinds: map[string]prometheus.ValueType{}}
	for _, d := range wal.MetricDefinitions.Counters {
		c.descs[d.Name] = prometheus.NewDesc("shoal_raft_wal_"+d.Name+"_total", d.Desc, nil, nil)
		c.kinds[d.Name] = prometheus.CounterValue
	}
	for _, d := range wal.MetricDefinitions.Gauges {
		c.descs[d.Name] = prometheus.NewDesc("shoal_raft_wal_"+d.Name, d.Desc, nil, nil)
		c.kinds[d.Name] = prometheus.GaugeValue
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *walCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *walCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats.Summary()
	for _, vals := range []map[string]uint64{s.Counters, s.Gauges} {
		for name, v := range vals {
			if d, ok := c.descs[name]; ok {
				ch <- prometheus.MustNewConstMetric(d, c.kinds[name], float64(v))
			}
		}
	}
}

// retireBolt renames dir/raft.db to raft.db.migrated once its contents are
// in the committed wal, and makes the rename durable.
func retireBolt(dir string) error {
	from, to := filepath.Join(dir, boltFile), filepath.Join(dir, boltMigrated)
	if has, err := exists(to); err != nil {
		return err
	} else if has {
		return fmt.Errorf("retire the migrated bolt store: both %s and %s exist beside the wal; remove one", from, to)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("retire the migrated bolt store: %w", err)
	}
	return syncDir(dir)
}

// removeInterrupted removes dir/wal.migrating, what an interrupted
// migration leaves, and reports whether there was one.
func removeInterrupted(dir string) (bool, error) {
	tmp := filepath.Join(dir, walMigrating)
	has, err := exists(tmp)
	if err != nil || !has {
		return false, err
	}
	if err := os.RemoveAll(tmp); err != nil {
		return false, fmt.Errorf("remove an interrupted migration: %w", err)
	}
	return true, syncDir(dir)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("raft log store: %w", err)
	}
}

// syncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

var _ prometheus.Collector = (*walCollector)(nil)
