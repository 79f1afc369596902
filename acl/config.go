package acl

import (
	"errors"
	"fmt"
	"time"

	"shoal/modules"
)

// Config is the acl module's configuration. Nothing in it reaches the
// state machine: a token's expiry travels in its create command.
type Config struct {
	// ExpiryInterval is how often the leader looks for expired tokens and
	// commits their removal (--acl-expiry-interval). An expired token is
	// refused by Authenticate at once, on every node, whatever this is:
	// the loop only frees its place and its name.
	ExpiryInterval time.Duration
	// MaxTTL bounds the TTL a create request may ask for (--acl-max-ttl);
	// 0 means the hard bound of ten years.
	MaxTTL time.Duration
}

// Defaults of Config, in one place.
const (
	DefaultExpiryInterval = time.Minute
	DefaultMaxTTL         = 0
)

// Hard bounds, also enforced by the command decoders.
const (
	minTTL       = time.Second
	maxTTLBound  = 10 * 366 * 24 * time.Hour
	minExpiryInt = 10 * time.Millisecond
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{ExpiryInterval: DefaultExpiryInterval, MaxTTL: DefaultMaxTTL}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid acl configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.ExpiryInterval < minExpiryInt:
		return fmt.Errorf("acl-expiry-interval must be at least %s, got %s: %w", minExpiryInt, c.ExpiryInterval, ErrInvalidConfig)
	case c.MaxTTL != 0 && (c.MaxTTL < minTTL || c.MaxTTL > maxTTLBound):
		return fmt.Errorf("acl-max-ttl must be 0 (no bound) or from %s to %s, got %s: %w", minTTL, maxTTLBound, c.MaxTTL, ErrInvalidConfig)
	}
	return nil
}

// maxTTL is the longest TTL a create request may ask for.
func (c Config) maxTTL() time.Duration {
	if c.MaxTTL == 0 {
		return maxTTLBound
	}
	return c.MaxTTL
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.DurationVar(&c.ExpiryInterval, "acl-expiry-interval", c.ExpiryInterval, "how often the leader removes expired ACL tokens")
	fs.DurationVar(&c.MaxTTL, "acl-max-ttl", c.MaxTTL, "longest TTL an ACL token may be created with (0: ten years)")
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
