package locks

import (
	"errors"
	"fmt"
	"time"

	"shoal/modules"
)

// Config is the locks module's configuration. It bounds what the HTTP API
// accepts; nothing in it reaches the state machine, which reads every
// setting that affects its state from the commands themselves.
type Config struct {
	// MinTTL and MaxTTL bound the lease TTL of an acquire or renew
	// (--locks-min-ttl, --locks-max-ttl); a TTL outside is a 400.
	MinTTL time.Duration
	MaxTTL time.Duration
	// MaxWait bounds the "wait" of a blocking acquire and the back-off
	// between server-side retries (--locks-max-wait).
	MaxWait time.Duration
	// MaxSemaphores and MaxLocks cap how many semaphores and read/write
	// locks the cluster holds (--locks-max-semaphores, --locks-max-locks;
	// 0: no cap). The caps travel in each command that may create one.
	MaxSemaphores int
	MaxLocks      int

	// audit, when set (tests only), receives every grant and end of a hold
	// the state machine applies on this node, from the FSM goroutine.
	audit func(auditEvent)
}

// Defaults of Config, in one place.
const (
	DefaultMinTTL  = time.Second
	DefaultMaxTTL  = 24 * time.Hour
	DefaultMaxWait = time.Hour
	// DefaultMaxSemaphores and DefaultMaxLocks keep a client that creates
	// them in a loop from growing every node's state without bound (a
	// lock exists while it has holders or waiters).
	DefaultMaxSemaphores = 10_000
	DefaultMaxLocks      = 100_000
)

// Hard bounds that the state machine also enforces on commands, far above
// any sensible configuration.
const (
	maxTTLBound  = 366 * 24 * time.Hour
	maxWaitBound = 24 * time.Hour
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{MinTTL: DefaultMinTTL, MaxTTL: DefaultMaxTTL, MaxWait: DefaultMaxWait,
		MaxSemaphores: DefaultMaxSemaphores, MaxLocks: DefaultMaxLocks}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid locks configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.MinTTL <= 0:
		return fmt.Errorf("locks-min-ttl must be positive, got %s: %w", c.MinTTL, ErrInvalidConfig)
	case c.MaxTTL < c.MinTTL:
		return fmt.Errorf("locks-max-ttl %s is below locks-min-ttl %s: %w", c.MaxTTL, c.MinTTL, ErrInvalidConfig)
	case c.MaxTTL > maxTTLBound:
		return fmt.Errorf("locks-max-ttl must be at most %s, got %s: %w", maxTTLBound, c.MaxTTL, ErrInvalidConfig)
	case c.MaxSemaphores < 0 || c.MaxLocks < 0:
		return fmt.Errorf("locks-max-semaphores and locks-max-locks must not be negative (0 is no cap), got %d and %d: %w", c.MaxSemaphores, c.MaxLocks, ErrInvalidConfig)
	case c.MaxWait <= 0 || c.MaxWait > maxWaitBound:
		return fmt.Errorf("locks-max-wait must be positive and at most %s, got %s: %w", maxWaitBound, c.MaxWait, ErrInvalidConfig)
	}
	return nil
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.DurationVar(&c.MinTTL, "locks-min-ttl", c.MinTTL, "shortest lease TTL an acquire or renew may ask for")
	fs.DurationVar(&c.MaxTTL, "locks-max-ttl", c.MaxTTL, "longest lease TTL an acquire or renew may ask for")
	fs.IntVar(&c.MaxSemaphores, "locks-max-semaphores", c.MaxSemaphores, "semaphores the cluster may hold: creating one more is refused (409 too_many_semaphores; 0: no cap)")
	fs.IntVar(&c.MaxLocks, "locks-max-locks", c.MaxLocks, "read/write locks the cluster may hold at once (a lock exists while held or waited for): acquiring a new one beyond is refused (409 too_many_locks; 0: no cap)")
	fs.DurationVar(&c.MaxWait, "locks-max-wait", c.MaxWait, "longest wait of a blocking acquire, and of the back-off between its retries")
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
