package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures one node's membership. Make it with DefaultConfig and
// change what differs; New validates it.
type Config struct {
	// NodeName is this node's name, unique in the cluster.
	NodeName string
	// BindAddr is the host:port memberlist listens on, TCP and UDP. The
	// host must be an IP address (0.0.0.0 for every interface); port 0
	// picks a free port (read it back from LocalMember().Addr).
	BindAddr string
	// AdvertiseAddr is the host:port other nodes use to reach this one. ""
	// means BindAddr; if BindAddr's host is 0.0.0.0, memberlist then
	// advertises a private IP of this host. Port 0 means the bound port.
	AdvertiseAddr string
	// Meta is what this node advertises to the others. It must encode to at
	// most memberlist.MetaMaxSize (512) bytes.
	Meta Meta
	// Timing holds the gossip, probe and suspicion timings.
	Timing Timing
	// RetransmitMult sets how many times a broadcast is retransmitted:
	// RetransmitMult * ceil(log10(N+1)).
	RetransmitMult int
	// RetryJoinMin and RetryJoinMax bound RetryJoin's exponential backoff.
	RetryJoinMin, RetryJoinMax time.Duration
	// Logger receives this package's and memberlist's logs; nil discards.
	Logger *slog.Logger
	// Registerer is this node's Prometheus registry (never the default
	// one); nil disables metrics.
	Registerer prometheus.Registerer
	// Keyring, if set, encrypts gossip (AES-GCM) with its primary key and
	// accepts only what decrypts with one of its keys; nil leaves gossip in
	// the clear (tests, --dev). The keyring package keeps it in step with
	// the cluster's secrets.
	Keyring *memberlist.Keyring
	// WrapTransport, if set, wraps memberlist's network transport; tests
	// use it to inject partitions. nil uses the plain NetTransport.
	WrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// Timing is memberlist's failure detector and gossip tuning. The fields
// mean what memberlist.Config's fields of the same name mean.
type Timing struct {
	// GossipInterval is how often gossip (and piggybacked broadcasts) is
	// sent to GossipNodes random members.
	GossipInterval time.Duration
	GossipNodes    int
	// ProbeInterval is how often one member is probed; ProbeTimeout is how
	// long a direct probe waits for its ack before indirect probes.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// IndirectChecks is how many members are asked to probe a member that
	// missed a direct probe.
	IndirectChecks int
	// SuspicionMult and SuspicionMaxTimeoutMult scale how long a suspect
	// member has to refute before it is declared dead.
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	// PushPullInterval is how often full state (including the channels'
	// StateHandler state) is exchanged with one random member.
	PushPullInterval time.Duration
	// TCPTimeout bounds connecting, reading and writing a stream (joins,
	// push/pull, SendTo).
	TCPTimeout time.Duration
	// GossipToTheDeadTime is how long memberlist keeps gossiping to a dead
	// member (and keeps it in its own node map).
	GossipToTheDeadTime time.Duration
	// DeadNodeReclaimTime is how long after a member died its name may be
	// taken by a node at a different address (a crashed node restarted on a
	// new port). 0 means never.
	DeadNodeReclaimTime time.Duration
	// BroadcastTimeout bounds how long UpdateMeta and Leave wait for their
	// message to be gossiped before returning.
	BroadcastTimeout time.Duration
	// ReconnectInterval is how often one random dead member is contacted
	// again, so that gossip heals after a partition (see reconnect.go).
	// 0 turns reconnecting off.
	ReconnectInterval time.Duration
}

// DefaultTiming is for a LAN, as memberlist.DefaultLANConfig.
func DefaultTiming() Timing {
	return Timing{
		GossipInterval:          200 * time.Millisecond,
		GossipNodes:             3,
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		PushPullInterval:        30 * time.Second,
		TCPTimeout:              10 * time.Second,
		GossipToTheDeadTime:     30 * time.Second,
		DeadNodeReclaimTime:     30 * time.Second,
		BroadcastTimeout:        5 * time.Second,
		ReconnectInterval:       10 * time.Second,
	}
}

// LocalTiming is for nodes on one host talking over loopback, such as the
// in-process test cluster: a dead member is detected within about 1-2 s.
func LocalTiming() Timing {
	return Timing{
		GossipInterval:          20 * time.Millisecond,
		GossipNodes:             3,
		ProbeInterval:           200 * time.Millisecond,
		ProbeTimeout:            100 * time.Millisecond,
		IndirectChecks:          1,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 3,
		PushPullInterval:        time.Second,
		TCPTimeout:              2 * time.Second,
		GossipToTheDeadTime:     2 * time.Second,
		DeadNodeReclaimTime:     200 * time.Millisecond,
		BroadcastTimeout:        2 * time.Second,
		ReconnectInterval:       300 * time.Millisecond,
	}
}

// DefaultConfig returns the defaults: the host name as node name, gossip on
// 0.0.0.0:7946, LAN timings, retry-join backoff from 1 s to 30 s.
func DefaultConfig() Config {
	name, _ := os.Hostname() // an empty name fails Validate
	return Config{
		NodeName:       name,
		BindAddr:       "0.0.0.0:7946",
		Timing:         DefaultTiming(),
		RetransmitMult: 4,
		RetryJoinMin:   time.Second,
		RetryJoinMax:   30 * time.Second,
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("membership: node name is empty")
	}
	if _, _, err := splitHostPort(c.BindAddr, false); err != nil {
		return fmt.Errorf("membership: bind address: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr, true); err != nil {
			return fmt.Errorf("membership: advertise address: %w", err)
		}
	}
	if err := c.Timing.validate(); err != nil {
		return fmt.Errorf("membership: timing: %w", err)
	}
	if c.RetransmitMult <= 0 {
		return fmt.Errorf("membership: retransmit mult must be positive, got %d", c.RetransmitMult)
	}
	if c.RetryJoinMin <= 0 || c.RetryJoinMax < c.RetryJoinMin {
		return fmt.Errorf("membership: retry-join backoff must satisfy 0 < min <= max, got %s..%s", c.RetryJoinMin, c.RetryJoinMax)
	}
	if _, err := encodeMeta(c.Meta, false); err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	return nil
}

func (t Timing) validate() error {
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"gossip interval", t.GossipInterval},
		{"probe interval", t.ProbeInterval},
		{"probe timeout", t.ProbeTimeout},
		{"push/pull interval", t.PushPullInterval},
		{"tcp timeout", t.TCPTimeout},
		{"broadcast timeout", t.BroadcastTimeout},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return fmt.Errorf("%s must be positive, got %s", d.name, d.d)
		}
	}
	if t.ProbeTimeout > t.ProbeInterval {
		return fmt.Errorf("probe timeout %s exceeds probe interval %s", t.ProbeTimeout, t.ProbeInterval)
	}
	if t.GossipToTheDeadTime < 0 || t.DeadNodeReclaimTime < 0 {
		return errors.New("gossip-to-the-dead and dead-node-reclaim times must not be negative")
	}
	counts := []struct {
		name string
		n    int
	}{
		{"gossip nodes", t.GossipNodes},
		{"indirect checks", t.IndirectChecks},
		{"suspicion mult", t.SuspicionMult},
		{"suspicion max timeout mult", t.SuspicionMaxTimeoutMult},
	}
	for _, c := range counts {
		if c.n <= 0 {
			return fmt.Errorf("%s must be positive, got %d", c.name, c.n)
		}
	}
	return nil
}

// splitHostPort parses "ip:port". An empty host means 0.0.0.0 unless
// needHost is set; port may be 0.
func splitHostPort(addr string, needHost bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("parse %q: %w", addr, err)
	}
	if host == "" {
		if needHost {
			return "", 0, fmt.Errorf("parse %q: host is empty", addr)
		}
		host = "0.0.0.0"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", 0, fmt.Errorf("parse %q: host must be an IP address: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("parse %q: bad port: %w", addr, err)
	}
	return ip.String(), int(port), nil
}
