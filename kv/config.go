package kv

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"shoal/modules"
)

// Config is the kv module's configuration. Unlike a Raft module's, it is
// purely local: nodes with different settings still converge, because every
// entry carries its own version and the merge rule never reads the
// configuration (the tombstone TTL only decides when this node forgets).
type Config struct {
	// MaxValue is the largest value accepted by PUT, in bytes
	// (--kv-max-value). It should stay below the agent's --max-body-bytes.
	MaxValue int
	// TombstoneTTL is how long a delete is remembered (--kv-tombstone-ttl).
	// It must be longer than any outage or partition a node is expected to
	// come back from with its data: see the package documentation.
	TombstoneTTL time.Duration
	// GossipInterval is how often this node starts an anti-entropy round
	// with one random peer (--kv-gossip-interval).
	GossipInterval time.Duration
	// Handlers are event handler scripts (--kv-handler, repeatable), each
	// "EVENTS[:prefix=PREFIX]=PATH"; see ParseHandlerSpec.
	Handlers []string
	// Webhooks are URLs every event is POSTed to (--kv-webhook, repeatable),
	// each optionally filtered like a handler: "[EVENTS[:prefix=PREFIX]=]URL".
	Webhooks []string
	// HandlerTimeout bounds one handler run or webhook call
	// (--kv-handler-timeout).
	HandlerTimeout time.Duration
	// HandlerQueue is how many events wait per handler before new ones are
	// dropped and counted (--kv-handler-queue).
	HandlerQueue int
	// StreamHeartbeat is the interval of the ": ping" comment on watch
	// streams (--kv-stream-heartbeat).
	StreamHeartbeat time.Duration

	// clock replaces time.Now for this node's hybrid logical clock, its
	// tombstone horizon and its convergence-lag metric. Tests set it to
	// model a node whose clock is skewed; nil is time.Now.
	clock func() time.Time
	// handlerFlag and webhookFlag receive --kv-handler and --kv-webhook
	// when the flag set cannot bind repeatable flags (see BindFlags).
	handlerFlag, webhookFlag string
}

// Defaults of Config, in one place.
const (
	DefaultMaxValue        = 512 << 10
	DefaultTombstoneTTL    = 24 * time.Hour
	DefaultGossipInterval  = 200 * time.Millisecond
	DefaultHandlerTimeout  = 10 * time.Second
	DefaultHandlerQueue    = 1024
	DefaultStreamHeartbeat = 15 * time.Second

	// maxValueLimit caps --kv-max-value: a value travels whole in one
	// message and sits whole in memory while it is merged.
	maxValueLimit = 64 << 20
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		MaxValue:        DefaultMaxValue,
		TombstoneTTL:    DefaultTombstoneTTL,
		GossipInterval:  DefaultGossipInterval,
		HandlerTimeout:  DefaultHandlerTimeout,
		HandlerQueue:    DefaultHandlerQueue,
		StreamHeartbeat: DefaultStreamHeartbeat,
	}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid kv configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.MaxValue < 1 || c.MaxValue > maxValueLimit:
		return fmt.Errorf("kv-max-value must be from 1 to %d bytes, got %d: %w", maxValueLimit, c.MaxValue, ErrInvalidConfig)
	case c.TombstoneTTL <= 0:
		return fmt.Errorf("kv-tombstone-ttl must be positive, got %s: %w", c.TombstoneTTL, ErrInvalidConfig)
	case c.GossipInterval <= 0:
		return fmt.Errorf("kv-gossip-interval must be positive, got %s: %w", c.GossipInterval, ErrInvalidConfig)
	case c.HandlerTimeout <= 0:
		return fmt.Errorf("kv-handler-timeout must be positive, got %s: %w", c.HandlerTimeout, ErrInvalidConfig)
	case c.HandlerQueue < 1:
		return fmt.Errorf("kv-handler-queue must be at least 1, got %d: %w", c.HandlerQueue, ErrInvalidConfig)
	case c.StreamHeartbeat <= 0:
		return fmt.Errorf("kv-stream-heartbeat must be positive, got %s: %w", c.StreamHeartbeat, ErrInvalidConfig)
	}
	for _, s := range c.handlerSpecs() {
		if _, err := ParseHandlerSpec(s); err != nil {
			return fmt.Errorf("kv-handler %q: %w", s, err)
		}
	}
	for _, s := range c.webhookSpecs() {
		if _, err := ParseWebhookSpec(s); err != nil {
			return fmt.Errorf("kv-webhook %q: %w", s, err)
		}
	}
	return nil
}

// now is the configured clock.
func (c Config) now() time.Time {
	if c.clock != nil {
		return c.clock()
	}
	return time.Now()
}

// listFlag is a repeatable string flag. Set also splits on newlines, so
// that one SHOAL_KV_HANDLER variable can carry several handlers.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, "\n")
}

func (l listFlag) Set(s string) error {
	for _, part := range strings.Split(s, "\n") {
		if part = strings.TrimSpace(part); part != "" {
			*l.p = append(*l.p, part)
		}
	}
	return nil
}

// varFlagSet is the part of *flag.FlagSet that modules.FlagSet lacks and
// repeatable flags need.
type varFlagSet interface {
	Var(value flag.Value, name, usage string)
}

// BindFlags binds the configuration to the agent's command line. The
// current values of c are the flag defaults. --kv-handler and --kv-webhook
// are repeatable when fs is a *flag.FlagSet (the agent's is); with another
// FlagSet they take one value each.
func (c *Config) BindFlags(fs modules.FlagSet) {
	fs.IntVar(&c.MaxValue, "kv-max-value", c.MaxValue, "largest value a PUT accepts, in bytes (413 beyond)")
	fs.DurationVar(&c.TombstoneTTL, "kv-tombstone-ttl", c.TombstoneTTL, "how long deletes are remembered; keep it longer than any outage a node must survive")
	fs.DurationVar(&c.GossipInterval, "kv-gossip-interval", c.GossipInterval, "interval of anti-entropy rounds with one random peer")
	fs.DurationVar(&c.HandlerTimeout, "kv-handler-timeout", c.HandlerTimeout, "time limit of one handler run or webhook call")
	fs.IntVar(&c.HandlerQueue, "kv-handler-queue", c.HandlerQueue, "events queued per handler before new ones are dropped")
	fs.DurationVar(&c.StreamHeartbeat, "kv-stream-heartbeat", c.StreamHeartbeat, "interval of the keep-alive comment on watch streams")
	handlerUsage := "run a script on events: EVENTS[:prefix=PREFIX]=PATH, EVENTS a comma-separated list of new_key, key_changed, key_removed, synced or * (repeatable)"
	webhookUsage := "POST every event as JSON to a URL: [EVENTS[:prefix=PREFIX]=]URL (repeatable)"
	if vfs, ok := fs.(varFlagSet); ok {
		vfs.Var(listFlag{&c.Handlers}, "kv-handler", handlerUsage)
		vfs.Var(listFlag{&c.Webhooks}, "kv-webhook", webhookUsage)
		return
	}
	fs.StringVar(&c.handlerFlag, "kv-handler", "", handlerUsage)
	fs.StringVar(&c.webhookFlag, "kv-webhook", "", webhookUsage)
}

// handlerSpecs returns Handlers plus what a single-valued flag set; the
// same for webhookSpecs.
func (c Config) handlerSpecs() []string {
	return append(slices.Clip(c.Handlers), splitNonEmpty(c.handlerFlag)...)
}
func (c Config) webhookSpecs() []string {
	return append(slices.Clip(c.Webhooks), splitNonEmpty(c.webhookFlag)...)
}

func splitNonEmpty(s string) []string {
	var out []string
	_ = listFlag{&out}.Set(s)
	return out
}

// HandlerSpec is one parsed --kv-handler or --kv-webhook.
type HandlerSpec struct {
	// Events are the event types that run the handler.
	Events map[EventType]bool
	// Prefix limits the handler to keys that start with it.
	Prefix string
	// Target is the script path or the webhook URL.
	Target string
}

// Matches reports whether an event of type t on key runs the handler. The
// prefix does not apply to synced, which has no key.
func (h HandlerSpec) Matches(t EventType, key string) bool {
	return h.Events[t] && (t == EventSynced || strings.HasPrefix(key, h.Prefix))
}

// errBadSpec is wrapped by the errors of the spec parsers.
var errBadSpec = fmt.Errorf("bad handler spec: %w", ErrInvalidConfig)

// ParseHandlerSpec parses "EVENTS[:prefix=PREFIX]=PATH", for example
// "new_key,key_changed:prefix=config/=/usr/local/bin/reload". EVENTS is a
// comma-separated list of new_key, key_changed, key_removed and synced, or
// "*" for all of them. PREFIX ends at the first '=' after "prefix=", so it
// cannot contain '='.
func ParseHandlerSpec(s string) (HandlerSpec, error) {
	filter, target, ok := splitFilter(s)
	if !ok {
		return HandlerSpec{}, fmt.Errorf("want EVENTS[:prefix=PREFIX]=PATH: %w", errBadSpec)
	}
	spec, err := parseFilter(filter)
	if err != nil {
		return HandlerSpec{}, err
	}
	if target == "" {
		return HandlerSpec{}, fmt.Errorf("empty script path: %w", errBadSpec)
	}
	spec.Target = target
	return spec, nil
}

// ParseWebhookSpec parses "[EVENTS[:prefix=PREFIX]=]URL". Without a
// filter, every event is posted.
func ParseWebhookSpec(s string) (HandlerSpec, error) {
	spec := HandlerSpec{Events: allEvents(), Target: s}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		filter, target, ok := splitFilter(s)
		if !ok {
			return HandlerSpec{}, fmt.Errorf("want [EVENTS[:prefix=PREFIX]=]URL: %w", errBadSpec)
		}
		var err error
		if spec, err = parseFilter(filter); err != nil {
			return HandlerSpec{}, err
		}
		spec.Target = target
	}
	u, err := url.Parse(spec.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return HandlerSpec{}, fmt.Errorf("webhook %q is not an http or https URL: %w", spec.Target, errBadSpec)
	}
	return spec, nil
}

// splitFilter splits "EVENTS[:prefix=PREFIX]=TARGET" into the filter and
// the target.
func splitFilter(s string) (filter, target string, ok bool) {
	events, rest, found := strings.Cut(s, ":")
	if !found || strings.Contains(events, "=") {
		return strings.Cut(s, "=")
	}
	p, ok := strings.CutPrefix(rest, "prefix=")
	if !ok {
		return "", "", false
	}
	prefix, target, ok := strings.Cut(p, "=")
	if !ok {
		return "", "", false
	}
	return events + ":prefix=" + prefix, target, true
}

// parseFilter parses "EVENTS[:prefix=PREFIX]".
func parseFilter(filter string) (HandlerSpec, error) {
	events, prefix, hasPrefix := strings.Cut(filter, ":prefix=")
	spec := HandlerSpec{Events: map[EventType]bool{}}
	if hasPrefix {
		if !validPrefix(prefix) {
			return HandlerSpec{}, fmt.Errorf("prefix %q is not valid key text: %w", prefix, errBadSpec)
		}
		spec.Prefix = prefix
	}
	for _, name := range strings.Split(events, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "*" || name == "all":
			spec.Events = allEvents()
		case EventType(name).valid():
			spec.Events[EventType(name)] = true
		default:
			return HandlerSpec{}, fmt.Errorf("unknown event %q (want new_key, key_changed, key_removed, synced or *): %w", name, errBadSpec)
		}
	}
	return spec, nil
}

func allEvents() map[EventType]bool {
	return map[EventType]bool{EventNewKey: true, EventKeyChanged: true, EventKeyRemoved: true, EventSynced: true}
}

var (
	_ modules.Config     = Config{}
	_ modules.FlagBinder = (*Config)(nil)
)
