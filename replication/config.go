package replication

import (
	"errors"
	"fmt"
	"time"

	"shoal/modules"
)

// Config is the replication module's configuration. Nothing in it reaches
// the state machine: the in-sync set and the leader travel in commands.
type Config struct {
	// Dir is the replicated directory (--replication-dir); empty means
	// "files" under the module's data directory.
	Dir string
	// MinAcks is how many followers must acknowledge a write before it is
	// acknowledged to its client (--replication-min-acks); AutoMinAcks
	// means enough for a majority of the servers with the leader, 0 means
	// asynchronous (the leader's disk only, plus whatever in-sync members
	// there are).
	MinAcks int
	// AckTimeout bounds how long a write waits for acknowledgements, and
	// how long a follower may make no ack progress before it leaves the
	// in-sync set (--replication-ack-timeout).
	AckTimeout time.Duration
	// Fsync makes the leader and the followers fsync what they write before
	// acknowledging it (--replication-fsync).
	Fsync bool
	// Compress makes the leader compress the file data it streams with
	// LZ4 (--replication-compress), frame by frame, when that makes a frame
	// smaller. Followers read compressed and plain frames alike.
	Compress bool
	// OnLeaderElected and OnLeaderLost are shell commands run when this
	// node gains or loses replication leadership (hooks.go).
	OnLeaderElected string
	OnLeaderLost    string

	// ScanInterval is how often the leader scans the whole directory for
	// changes made behind the module's back (--replication-scan-interval);
	// fsnotify events trigger scans of the paths they name sooner.
	ScanInterval time.Duration

	// MaxQueueBytes bounds the live actions queued for one follower while
	// it catches up or lags; a follower beyond it is dropped and restarts
	// its catch-up.
	MaxQueueBytes int64
}

// AutoMinAcks is MinAcks' default: a majority of the servers, the leader
// included.
const AutoMinAcks = -1

// Defaults of Config, in one place.
const (
	DefaultAckTimeout    = 5 * time.Second
	DefaultMaxQueueBytes = 256 << 20
	DefaultScanInterval  = time.Second
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{MinAcks: AutoMinAcks, AckTimeout: DefaultAckTimeout, Fsync: true, MaxQueueBytes: DefaultMaxQueueBytes,
		ScanInterval: DefaultScanInterval}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid replication configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.MinAcks < AutoMinAcks:
		return fmt.Errorf("replication-min-acks must be -1 (auto) or at least 0, got %d: %w", c.MinAcks, ErrInvalidConfig)
	case c.AckTimeout <= 0 || c.AckTimeout > time.Hour:
		return fmt.Errorf("replication-ack-timeout must be positive and at most 1h, got %s: %w", c.AckTimeout, ErrInvalidConfig)
	case c.ScanInterval < 10*time.Millisecond:
		return fmt.Errorf("replication-scan-interval must be at least 10ms, got %s: %w", c.ScanInterval, ErrInvalidConfig)
	case c.MaxQueueBytes < 1<<20:
		return fmt.Errorf("replication queue bound must be at least 1 MiB, got %d: %w", c.MaxQueueBytes, ErrInvalidConfig)
	}
	return nil
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.StringVar(&c.Dir, "replication-dir", c.Dir, "replicated directory (default <data-dir>/modules/replication/files)")
	fs.IntVar(&c.MinAcks, "replication-min-acks", c.MinAcks, "followers that must acknowledge a write (-1: a majority with the leader; 0: async)")
	fs.DurationVar(&c.AckTimeout, "replication-ack-timeout", c.AckTimeout, "how long a write waits for acks, and a follower may make no ack progress before it leaves the in-sync set")
	fs.DurationVar(&c.ScanInterval, "replication-scan-interval", c.ScanInterval, "how often the leader scans the directory for changes other processes made (fsnotify events trigger earlier scans)")
	fs.BoolVar(&c.Fsync, "replication-fsync", c.Fsync, "fsync written files before acknowledging them")
	fs.BoolVar(&c.Compress, "replication-compress", c.Compress, "compress the file data the leader streams (LZ4)")
	fs.StringVar(&c.OnLeaderElected, "replication-on-leader-elected", c.OnLeaderElected, "shell command run when this node becomes replication leader (env: SHOAL_NODE, SHOAL_REPLICATION_TERM, SHOAL_REPLICATION_DIR, SHOAL_REPLICATION_EVENT)")
	fs.StringVar(&c.OnLeaderLost, "replication-on-leader-lost", c.OnLeaderLost, "shell command run when this node stops being replication leader (same environment)")
}

// minAcks is the number of follower acks a write needs with servers
// servers in the cluster.
func (c Config) minAcks(servers int) int {
	if c.MinAcks != AutoMinAcks {
		return c.MinAcks
	}
	if servers < 1 {
		return 0
	}
	return servers/2 + 1 - 1
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
