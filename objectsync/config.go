package objectsync

import (
	"errors"
	"fmt"
	"time"

	"shoal/modules"
)

// Config is the objectsync module's configuration. The settings that shape
// the replicated state (MaxSize, History) are read by the node that takes
// a write and travel inside its command, so the state machine never reads
// local configuration and nodes with different flags still agree.
type Config struct {
	// MaxSize bounds an object's canonical JSON (--objectsync-max-size).
	MaxSize int
	// History is how many patches are kept per object for reconnecting
	// clients (--objectsync-history).
	History int
	// MaxObjects and MaxDependencies cap the objects and the named
	// dependency counters the cluster holds (--objectsync-max-objects,
	// --objectsync-max-dependencies; 0: no cap). They travel in each
	// command that may create one.
	MaxObjects      int
	MaxDependencies int
	// Linger is how long an object without subscribers anywhere in the
	// cluster is kept, unless a connected master holds it
	// (--objectsync-linger); the leader drops it after that.
	Linger time.Duration
	// ProduceTimeout is how long a producer may take (or stay stalled)
	// before another is asked (--objectsync-produce-timeout).
	ProduceTimeout time.Duration
	// MinReproduceInterval rate-limits re-production of one object
	// (--objectsync-min-reproduce-interval): requests in between coalesce.
	MinReproduceInterval time.Duration
	// MaxSubscriptions bounds the ids and patterns one connection
	// subscribes to (--objectsync-max-subscriptions).
	MaxSubscriptions int
	// MaxConnections bounds the websocket connections of this node
	// (--objectsync-max-connections); SSE watches count separately.
	MaxConnections int
	// MaxWatches bounds the SSE watches of this node (--objectsync-max-watches).
	MaxWatches int
	// SendQueue is how many frames may wait for one slow subscriber before
	// its pending updates collapse into full states (--objectsync-send-queue).
	SendQueue int
	// PingInterval is how often a websocket is pinged to detect a dead
	// link (--objectsync-ping-interval).
	PingInterval time.Duration
	// FlowWindow bounds the bytes a subscriber has been sent but has not
	// shown it read (--objectsync-flow-window; ws.Config.FlowWindow):
	// past it, frames queue, and a full queue collapses into full states.
	FlowWindow int64
	// BatchInterval is the shortest time between two writes to a busy
	// subscriber (--objectsync-batch-interval; ws.Config.BatchInterval):
	// the updates that come within it go out together, in one write (one
	// message under shoal.objects.v2). An update to a subscriber quiet
	// for longer goes out at once.
	BatchInterval time.Duration
}

// Defaults of Config, in one place.
const (
	DefaultMaxSize              = 1 << 20
	DefaultHistory              = 64
	DefaultLinger               = 30 * time.Second
	DefaultProduceTimeout       = 30 * time.Second
	DefaultMinReproduceInterval = 100 * time.Millisecond
	DefaultMaxSubscriptions     = 1000
	DefaultMaxConnections       = 10000
	DefaultMaxWatches           = 1000
	DefaultSendQueue            = 64
	DefaultPingInterval         = 30 * time.Second
	DefaultFlowWindow           = 64 << 10
	DefaultBatchInterval        = 20 * time.Millisecond
	DefaultMaxObjects           = 100_000
	DefaultMaxDependencies      = 10_000
)

// Hard bounds, which the state machine also enforces on commands.
const (
	maxSizeBound    = 64 << 20
	maxHistoryBound = 4096
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		MaxSize: DefaultMaxSize, History: DefaultHistory, Linger: DefaultLinger,
		ProduceTimeout: DefaultProduceTimeout, MinReproduceInterval: DefaultMinReproduceInterval,
		MaxSubscriptions: DefaultMaxSubscriptions, MaxConnections: DefaultMaxConnections,
		MaxWatches: DefaultMaxWatches, SendQueue: DefaultSendQueue, PingInterval: DefaultPingInterval, FlowWindow: DefaultFlowWindow,
		BatchInterval: DefaultBatchInterval,
		MaxObjects:    DefaultMaxObjects, MaxDependencies: DefaultMaxDependencies,
	}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid objectsync configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.MaxSize < 2 || c.MaxSize > maxSizeBound:
		return fmt.Errorf("objectsync-max-size must be from 2 to %d bytes, got %d: %w", maxSizeBound, c.MaxSize, ErrInvalidConfig)
	case c.History < 0 || c.History > maxHistoryBound:
		return fmt.Errorf("objectsync-history must be from 0 to %d, got %d: %w", maxHistoryBound, c.History, ErrInvalidConfig)
	case c.Linger <= 0:
		return fmt.Errorf("objectsync-linger must be positive, got %s: %w", c.Linger, ErrInvalidConfig)
	case c.ProduceTimeout <= 0:
		return fmt.Errorf("objectsync-produce-timeout must be positive, got %s: %w", c.ProduceTimeout, ErrInvalidConfig)
	case c.MinReproduceInterval < 0:
		return fmt.Errorf("objectsync-min-reproduce-interval must not be negative, got %s: %w", c.MinReproduceInterval, ErrInvalidConfig)
	case c.MaxSubscriptions < 1:
		return fmt.Errorf("objectsync-max-subscriptions must be positive, got %d: %w", c.MaxSubscriptions, ErrInvalidConfig)
	case c.MaxConnections < 1:
		return fmt.Errorf("objectsync-max-connections must be positive, got %d: %w", c.MaxConnections, ErrInvalidConfig)
	case c.MaxWatches < 1:
		return fmt.Errorf("objectsync-max-watches must be positive, got %d: %w", c.MaxWatches, ErrInvalidConfig)
	case c.SendQueue < 2:
		return fmt.Errorf("objectsync-send-queue must be at least 2, got %d: %w", c.SendQueue, ErrInvalidConfig)
	case c.MaxObjects < 0 || c.MaxDependencies < 0:
		return fmt.Errorf("objectsync-max-objects and objectsync-max-dependencies must not be negative (0 is no cap), got %d and %d: %w", c.MaxObjects, c.MaxDependencies, ErrInvalidConfig)
	case c.FlowWindow < 0:
		return fmt.Errorf("objectsync-flow-window must not be negative (0 is no bound), got %d: %w", c.FlowWindow, ErrInvalidConfig)
	case c.BatchInterval < 0 || c.BatchInterval > time.Second:
		return fmt.Errorf("objectsync-batch-interval must be from 0 to 1s, got %s: %w", c.BatchInterval, ErrInvalidConfig)
	case c.PingInterval <= 0:
		return fmt.Errorf("objectsync-ping-interval must be positive, got %s: %w", c.PingInterval, ErrInvalidConfig)
	}
	return nil
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.IntVar(&c.MaxSize, "objectsync-max-size", c.MaxSize, "largest object, in bytes of canonical JSON")
	fs.IntVar(&c.History, "objectsync-history", c.History, "patches kept per object so that a reconnecting client gets patches instead of the full object")
	fs.DurationVar(&c.Linger, "objectsync-linger", c.Linger, "how long an object nobody in the cluster subscribes to is kept before the leader drops it (a connected master keeps it)")
	fs.DurationVar(&c.ProduceTimeout, "objectsync-produce-timeout", c.ProduceTimeout, "how long a producer may take, or stay stalled, before another producer is asked")
	fs.DurationVar(&c.MinReproduceInterval, "objectsync-min-reproduce-interval", c.MinReproduceInterval, "shortest interval between two productions of one object: dependency bumps in between coalesce into one")
	fs.IntVar(&c.MaxObjects, "objectsync-max-objects", c.MaxObjects, "objects the cluster may hold: a write that would create one more is refused (409 too_many_objects; 0: no cap)")
	fs.IntVar(&c.MaxDependencies, "objectsync-max-dependencies", c.MaxDependencies, "named dependency counters the cluster may hold: a bump that would create one more is refused (409 too_many_dependencies; 0: no cap)")
	fs.IntVar(&c.MaxSubscriptions, "objectsync-max-subscriptions", c.MaxSubscriptions, "ids and patterns one connection may subscribe to")
	fs.IntVar(&c.MaxConnections, "objectsync-max-connections", c.MaxConnections, "websocket connections this node holds open")
	fs.IntVar(&c.MaxWatches, "objectsync-max-watches", c.MaxWatches, "SSE watches this node holds open")
	fs.IntVar(&c.SendQueue, "objectsync-send-queue", c.SendQueue, "frames queued for one subscriber before its updates collapse into full states")
	fs.DurationVar(&c.PingInterval, "objectsync-ping-interval", c.PingInterval, "how often a websocket is pinged to detect a dead link")
	fs.DurationVar(&c.BatchInterval, "objectsync-batch-interval", c.BatchInterval, "shortest time between two writes to a busy subscriber: updates that come within it go out together, one system call instead of one each (and one message under shoal.objects.v2); an update to a subscriber quiet for longer goes out at once (0: every update at once)")
	fs.Int64Var(&c.FlowWindow, "objectsync-flow-window", c.FlowWindow, "bytes a subscriber may have been sent without having read them (a ping's pong tells): past it, its updates queue and collapse into full states, so a slow subscriber is never minutes behind (0: no bound)")
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
