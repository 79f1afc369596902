package logstream

import (
	"errors"
	"fmt"
	"time"

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
}

// Defaults of Config, in one place.
const (
	DefaultMaxEntries      = 1_000_000
	DefaultDedupWindow     = 10 * time.Minute
	DefaultStreamHeartbeat = 15 * time.Second
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		MaxEntries:      DefaultMaxEntries,
		DedupWindow:     DefaultDedupWindow,
		StreamHeartbeat: DefaultStreamHeartbeat,
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
	}
	return nil
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.IntVar(&c.MaxEntries, "log-max-entries", c.MaxEntries, "entries retained per log; older ones are trimmed")
	fs.DurationVar(&c.DedupWindow, "log-dedup-window", c.DedupWindow, "how long a publish id is remembered for deduplication (0 disables)")
	fs.DurationVar(&c.StreamHeartbeat, "log-stream-heartbeat", c.StreamHeartbeat, "interval of the keep-alive comment on log event streams")
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
