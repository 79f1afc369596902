package logstream

import (
	"errors"
	"fmt"
	"time"

	"shoal/logstream/segment"
	"shoal/modules"
)

// Config is the log module's configuration. MaxEntries and DedupWindow are
// stamped into each publish command by the node that accepts the request;
// the state machine never reads them from its own configuration.
type Config struct {
	// MaxEntries is how many entries each log retains; older ones are
	// trimmed (--log-max-entries).
	MaxEntries int
	// DedupWindow is how long a publish id is remembered, measured in Raft
	// command time (--log-dedup-window). Zero disables deduplication.
	DedupWindow time.Duration
	// StreamHeartbeat is the interval of the ": ping" comment sent on idle
	// and busy SSE streams alike (--log-stream-heartbeat). Tests shorten it.
	StreamHeartbeat time.Duration
	// MaxBytes and MaxAge are the cluster-wide retention by size and age of
	// logs that set none of their own (--log-max-bytes, --log-max-age); 0
	// is no limit. The leader applies them: its values are the ones that
	// count.
	MaxBytes int64
	MaxAge   time.Duration
	// RetentionInterval is how often the leader checks every log's size and
	// age against its limits (--log-retention-interval).
	RetentionInterval time.Duration
	// SegmentBytes is the size at which a log's segment file is sealed and
	// a new one started (--log-segment-bytes): the unit retention deletes.
	SegmentBytes int64
	// ReadCacheBytes bounds the node's cache of recently appended and read
	// entries (--log-read-cache-bytes); 0 disables it.
	ReadCacheBytes int64
	// MaxLogs caps the number of logs in the cluster (--log-max-logs; 0:
	// no cap). The cap travels in each command that may create a log.
	MaxLogs int
}

// Defaults of Config, in one place.
const (
	DefaultMaxEntries      = 1_000_000
	DefaultDedupWindow     = 10 * time.Minute
	DefaultStreamHeartbeat = 15 * time.Second
	// DefaultRetentionInterval is a second: age limits are meant in hours
	// and days, and a check costs a look at each log's oldest segment.
	DefaultRetentionInterval = time.Second
	DefaultSegmentBytes      = segment.DefaultSegmentBytes
	// DefaultReadCacheBytes holds about 14,000 entries of 256 bytes: the
	// tails that streams and recent reads ask for. Older reads come from
	// the segment files through the kernel's page cache, which costs a
	// decode, not a disk seek; the cache is what a node's memory pays for
	// that decode, so it stays small by default.
	DefaultReadCacheBytes = 8 << 20
	// DefaultMaxLogs keeps a client that creates logs in a loop from
	// filling a node with directories and its state with counters.
	DefaultMaxLogs = 10_000
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		MaxEntries:      DefaultMaxEntries,
		DedupWindow:     DefaultDedupWindow,
		StreamHeartbeat: DefaultStreamHeartbeat,

		RetentionInterval: DefaultRetentionInterval,
		SegmentBytes:      DefaultSegmentBytes,
		ReadCacheBytes:    DefaultReadCacheBytes,
		MaxLogs:           DefaultMaxLogs,
	}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid log configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.MaxEntries < 1:
		return fmt.Errorf("log-max-entries must be at least 1, got %d: %w", c.MaxEntries, ErrInvalidConfig)
	case c.DedupWindow < 0:
		return fmt.Errorf("log-dedup-window must not be negative, got %s: %w", c.DedupWindow, ErrInvalidConfig)
	case c.StreamHeartbeat <= 0:
		return fmt.Errorf("log-stream-heartbeat must be positive, got %s: %w", c.StreamHeartbeat, ErrInvalidConfig)
	case c.MaxBytes < 0 || c.MaxBytes > maxLimitValue:
		return fmt.Errorf("log-max-bytes must be from 0 (no limit) to %d, got %d: %w", int64(maxLimitValue), c.MaxBytes, ErrInvalidConfig)
	case c.MaxAge < 0:
		return fmt.Errorf("log-max-age must not be negative (0 is no limit), got %s: %w", c.MaxAge, ErrInvalidConfig)
	case c.RetentionInterval <= 0:
		return fmt.Errorf("log-retention-interval must be positive, got %s: %w", c.RetentionInterval, ErrInvalidConfig)
	case c.MaxLogs < 0:
		return fmt.Errorf("log-max-logs must not be negative (0 is no cap), got %d: %w", c.MaxLogs, ErrInvalidConfig)
	case c.ReadCacheBytes < 0:
		return fmt.Errorf("log-read-cache-bytes must not be negative, got %d: %w", c.ReadCacheBytes, ErrInvalidConfig)
	}
	if err := c.segmentConfig().Validate(); err != nil {
		return fmt.Errorf("log-segment-bytes %d: %w: %w", c.SegmentBytes, err, ErrInvalidConfig)
	}
	return nil
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.IntVar(&c.MaxEntries, "log-max-entries", c.MaxEntries, "entries retained per log; older ones are trimmed")
	fs.DurationVar(&c.DedupWindow, "log-dedup-window", c.DedupWindow, "how long a publish id is remembered for deduplication (0 disables)")
	fs.DurationVar(&c.StreamHeartbeat, "log-stream-heartbeat", c.StreamHeartbeat, "interval of the keep-alive comment on log event streams")
	fs.Int64Var(&c.MaxBytes, "log-max-bytes", c.MaxBytes, "bytes retained per log on disk, for logs that set no limit of their own (0: no limit)")
	fs.DurationVar(&c.MaxAge, "log-max-age", c.MaxAge, "age after which entries are trimmed, for logs that set no limit of their own (0: no limit)")
	fs.DurationVar(&c.RetentionInterval, "log-retention-interval", c.RetentionInterval, "how often the leader applies retention by bytes and age")
	fs.Int64Var(&c.SegmentBytes, "log-segment-bytes", c.SegmentBytes, "size of a log's segment files (the unit retention deletes)")
	fs.IntVar(&c.MaxLogs, "log-max-logs", c.MaxLogs, "logs the cluster may hold: a publish or PUT that would create one more is refused (409 too_many_logs; 0: no cap)")
	fs.Int64Var(&c.ReadCacheBytes, "log-read-cache-bytes", c.ReadCacheBytes, "memory for recently appended and read entries, shared by all logs (0: none)")
}

// segmentConfig is the configuration of each log's store, without the
// node's shared cache and metrics.
func (c Config) segmentConfig() segment.Config {
	sc := segment.DefaultConfig()
	sc.SegmentBytes = c.SegmentBytes
	sc.IndexIntervalBytes = min(sc.IndexIntervalBytes, max(c.SegmentBytes/4, 1<<10))
	return sc
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
