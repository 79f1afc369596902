package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"shoal/consensus"
	"shoal/internal/faultnet"
	"shoal/internal/keyring"
	"shoal/membership"
	"shoal/modules"
)

// Config configures an Agent. Addresses are host:port; a port of 0 picks a
// free one (tests), and the chosen ports are reported by the Agent.
type Config struct {
	NodeName   string
	DataDir    string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	// Advertise is the host (no port) other nodes use to reach this one.
	// Empty: the bind host if it is a specific address, else the first
	// non-loopback address of the machine.
	Advertise string
	// Join lists gossip addresses of existing nodes; joining is retried with
	// backoff until one answers.
	Join []string
	// BootstrapExpect: wait until this many servers see each other, then
	// exactly one of them bootstraps Raft with all of them.
	BootstrapExpect int
	// BootstrapSelf makes a one-node cluster at once (--dev).
	BootstrapSelf bool
	// Rejoin lets a node that left its cluster (shoal leave) start again
	// with its data; without it, such a node refuses to start.
	Rejoin bool
	// Recover makes this node the only voter of its cluster, keeping its
	// data, before Raft starts: outage recovery after a majority of the
	// voters was lost for good (consensus.Config.Recover). Applied once:
	// a data directory recovered before refuses it. Excludes
	// BootstrapExpect and BootstrapSelf.
	Recover bool

	// Modules lists the enabled module IDs; empty means all compiled in.
	Modules []string
	// ModuleConfigs overrides module configurations by ID.
	ModuleConfigs map[string]modules.Config

	// Token, when set, is required as a bearer token on every API request
	// except health checks.
	Token string

	// ClusterSecret (base64, see keyring.Parse) protects node-to-node
	// traffic: gossip is encrypted with a key derived from it, and the
	// cluster port runs mutual TLS with certificates from a CA derived
	// from it. It seeds the keyring kept in the data directory.
	ClusterSecret string
	// ClusterTLSCert, ClusterTLSKey and ClusterTLSCA (PEM files) replace
	// the derived certificates with an operator's own PKI on the cluster
	// port; all three or none.
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
	// MaxBodyBytes limits request bodies (413 beyond).
	MaxBodyBytes int64
	// BodyTimeout bounds how long a client may take to send a request body
	// (408 beyond); 0 means no bound.
	BodyTimeout time.Duration
	// CORSOrigins are the origins whose pages may call the API from a
	// browser (scheme://host[:port]); none by default.
	CORSOrigins []string
	// TLSCert and TLSKey (PEM files) make the HTTP API serve HTTPS only
	// (TLS 1.2+); they are read again when they change or on ReloadTLS.
	// TLSClientCA (PEM) additionally requires client certificates that
	// chain to it.
	TLSCert, TLSKey, TLSClientCA string
	// MaxStreams and MaxStreamsPerClient bound the event streams open on
	// the node, in all and per client (token, or address); 0: no bound.
	MaxStreams, MaxStreamsPerClient int
	// RatePerClient is the requests per second one client (token, or
	// address) may send the API, with bursts of RateBurst (0: the rate,
	// rounded up); 0 means no limit.
	RatePerClient float64
	RateBurst     int
	// MinFreeDisk is the free space in the data directory's file system
	// below which the node raises its disk alarm and the cluster refuses
	// client writes (507 disk_full); 0 disables the alarm.
	MinFreeDisk uint64
	// DiskFree reads the free space (tests replace it); nil is statfs.
	DiskFree DiskFreeFunc

	SnapshotThreshold uint64
	// SnapshotBytes also triggers a snapshot after this many bytes of
	// Raft log (0: off; consensus.Config.SnapshotBytes).
	SnapshotBytes    uint64
	SnapshotInterval time.Duration
	DeadNodeReap     time.Duration
	// RaftVoters is the size of the Raft voter set: 1, 3, 5 or 7 (0 means
	// consensus's default, 5). Servers beyond it are non-voters.
	RaftVoters int
	// RaftMultiplier scales Raft's heartbeat, election and lease timeouts
	// (consensus.Timing.Scaled): 1 to 10, 0 means 1.
	RaftMultiplier int
	// RaftCommitTimeout replaces the Raft timing's commit timeout when
	// set. No flag sets it: tests use a long one to show that followers
	// learn commits from the leader's commit notices alone.
	RaftCommitTimeout time.Duration
	// RaftCommitNoticeHold fixes how long the leader holds a commit
	// notice back when no follower waits (consensus.Timing.
	// CommitNoticeHold). No flag sets it: a test uses a long one to show
	// that a waiting follower is told at once.
	RaftCommitNoticeHold time.Duration
	// Zone is this node's zone (rack, availability zone): voters spread
	// over zones. Empty means none.
	Zone string
	// Role is membership.RoleServer (empty: the default) or
	// membership.RoleClient: a light member that holds no Raft state and
	// forwards the requests of Raft modules to a server (docs/scaling.md).
	Role membership.Role
	// RaftLogStore is the Raft log store: consensus.LogStoreWAL or
	// consensus.LogStoreBolt (see consensus.OpenStores for the migration
	// from bolt to wal); empty means consensus's default.
	RaftLogStore string
	// Local selects timings for nodes on one machine (tests, --dev): fast
	// elections, fast failure detection, quick autopilot.
	Local bool

	Version string
	Logger  *slog.Logger
	// Gate injects network partitions (tests only).
	Gate *faultnet.Gate
	// OnElected, if set, is called with the term each time this node wins
	// a Raft election (tests check that no term has two leaders). It must
	// not block.
	OnElected func(term uint64)
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:            host,
		HTTPAddr:            "0.0.0.0:7480",
		RaftAddr:            "0.0.0.0:7481",
		GossipAddr:          "0.0.0.0:7482",
		MaxBodyBytes:        4 << 20,
		BodyTimeout:         30 * time.Second,
		MaxStreams:          4096,
		MaxStreamsPerClient: 512,
		MinFreeDisk:         256 << 20,
		SnapshotThreshold:   consensus.DefaultConfig().SnapshotThreshold,
		SnapshotBytes:       consensus.DefaultConfig().SnapshotBytes,
		SnapshotInterval:    consensus.DefaultConfig().SnapshotInterval,
		RaftLogStore:        consensus.DefaultConfig().LogStore,
		DeadNodeReap:        consensus.DefaultConfig().DeadNodeReap,
		Version:             "dev",
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.NodeName == "":
		return errors.New("node name is required")
	case len(c.NodeName) > 64:
		return errors.New("node name must be at most 64 bytes")
	case c.DataDir == "":
		return errors.New("data directory is required (--data-dir)")
	case c.BootstrapExpect < 0:
		return errors.New("bootstrap-expect must not be negative")
	case c.BootstrapExpect > 0 && c.BootstrapSelf:
		return errors.New("bootstrap-expect and self-bootstrap exclude each other")
	case c.Recover && c.BootstrapExpect > 0:
		return errors.New("--recover and --bootstrap-expect exclude each other: a recovered node keeps its cluster's data, it never forms a new cluster")
	case c.Recover && c.BootstrapSelf:
		return errors.New("--recover and --dev exclude each other")
	case c.MaxBodyBytes <= 0:
		return errors.New("max body size must be positive")
	case c.BodyTimeout < 0:
		return errors.New("http body timeout must not be negative")
	case c.MaxStreams < 0 || c.MaxStreamsPerClient < 0:
		return errors.New("stream limits must not be negative")
	case c.RatePerClient < 0 || c.RateBurst < 0:
		return errors.New("http rate and burst must not be negative")
	case c.SnapshotThreshold == 0:
		return errors.New("snapshot threshold must be at least 1")
	case c.DeadNodeReap <= 0:
		return errors.New("dead-node-reap must be positive")
	case c.RaftMultiplier < 0 || c.RaftMultiplier > consensus.MaxRaftMultiplier:
		return fmt.Errorf("raft multiplier %d: want 1 to %d", c.RaftMultiplier, consensus.MaxRaftMultiplier)
	case len(c.Zone) > 64:
		return errors.New("zone must be at most 64 bytes")
	case c.Role != "" && c.Role != membership.RoleServer && c.Role != membership.RoleClient:
		return fmt.Errorf("role %q: want server or client", c.Role)
	case c.IsClient() && (c.BootstrapExpect > 0 || c.BootstrapSelf || c.Recover):
		return errors.New("a client (--role client) holds no raft state: it cannot bootstrap (--bootstrap-expect, --dev) or --recover a cluster; it joins one that servers form")
	case c.IsClient() && len(c.Join) == 0:
		return errors.New("a client (--role client) needs --join: it serves nothing on its own")
	}
	if c.RaftVoters != 0 {
		if err := consensus.ValidVoters(c.RaftVoters); err != nil {
			return err
		}
	}
	if c.RaftLogStore != "" {
		if err := consensus.ValidateLogStore(c.RaftLogStore); err != nil {
			return err
		}
	}
	if c.ClusterSecret != "" {
		if _, err := keyring.Parse(c.ClusterSecret); err != nil {
			return fmt.Errorf("cluster secret: %w", err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	if n := countSet(c.ClusterTLSCert, c.ClusterTLSKey, c.ClusterTLSCA); n != 0 && n != 3 {
		return errors.New("cluster TLS needs all of --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca")
	}
	for _, a := range []struct{ name, addr string }{{"http", c.HTTPAddr}, {"raft", c.RaftAddr}, {"gossip", c.GossipAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s address %q: %w", a.name, a.addr, err)
		}
	}
	if c.Advertise != "" && net.ParseIP(c.Advertise) == nil {
		if _, _, err := net.SplitHostPort(c.Advertise); err == nil {
			return fmt.Errorf("advertise %q must be a host without a port", c.Advertise)
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("join address %q: %w", j, err)
		}
	}
	return nil
}

// IsClient reports whether the node is a light member (--role client).
func (c Config) IsClient() bool { return c.Role == membership.RoleClient }

func countSet(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}

// advertiseHost picks the host other nodes use to reach this node.
func advertiseHost(configured, bindHost string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
		return bindHost, nil
	}
	if bindHost != "" && net.ParseIP(bindHost) == nil {
		return bindHost, nil // a host name: others resolve it
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String(), nil
		}
	}
	return "", errors.New("no non-loopback address found; set --advertise")
}
