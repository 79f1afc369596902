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

	// audit, when set (tests only), receives every grant and end of a hold
	// the state machine applies on this node, from the FSM goroutine.
	audit func(auditEvent)
}

// Defaults of Config, in one place.
const (
	DefaultMinTTL  = time.Second
	DefaultMaxTTL  = 24 * time.Hour
	DefaultMaxWait = time.Hour
)

// Hard bounds that the state machine also enforces on commands, far above
// any sensible configuration.
const (
	maxTTLBound  = 366 * 24 * time.Hour
	maxWaitBound = 24 * time.Hour
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{MinTTL: DefaultMinTTL, MaxTTL: DefaultMaxTTL, MaxWait: DefaultMaxWait}
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
	fs.DurationVar(&c.MaxWait, "locks-max-wait", c.MaxWait, "longest wait of a blocking acquire, and of the back-off between its retries")
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
