package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"shoal/api"
	"shoal/consensus"
	"shoal/internal/agent"
	"shoal/internal/logging"
	"shoal/membership"
	"shoal/modules"
)

func init() {
	registerCommand("agent", "run a shoal node", func(_ context.Context, args []string, stdout, stderr io.Writer) int {
		return runAgent(args, stdout, stderr)
	})
}

// agentOptions binds the agent's flags to a Config. Module flags come from
// each compiled-in module's configuration (modules.FlagBinder).
type agentOptions struct {
	cfg        agent.Config
	join       string
	modules    string
	dev        bool
	logLevel   string
	logFormat  string
	moduleCfgs map[string]modules.Config
}

func newAgentOptions(fs *flag.FlagSet) *agentOptions {
	f := &agentOptions{cfg: agent.DefaultConfig(), moduleCfgs: map[string]modules.Config{}}
	c := &f.cfg
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "unique name of this node (default: the hostname)")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for raft, snapshots and module data (required unless --dev)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "host:port of the HTTP API")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "host:port of the raft transport")
	fs.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "host:port of gossip (TCP and UDP)")
	fs.StringVar(&c.Advertise, "advertise", "", "address other nodes use to reach this one (default: the bind host, or the first non-loopback address)")
	fs.StringVar(&f.join, "join", "", "comma-separated gossip addresses of existing nodes; retried with backoff until one answers")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many servers see each other")
	fs.BoolVar(&c.Recover, "recover", false, "outage recovery: make this node the only voter of its cluster, keeping its data, then let new nodes join it; for a majority of voters lost for good, applied once (docs/operations.md)")
	fs.BoolVar(&c.Rejoin, "rejoin", false, "start a node that left its cluster (shoal leave) again with its data; without it such a node refuses to start")
	fs.StringVar(&f.modules, "modules", "", "comma-separated modules to enable (default: all compiled in: "+strings.Join(modules.IDs(modules.Registered()), ",")+")")
	fs.BoolVar(&f.dev, "dev", false, "one-node development mode: listeners on 127.0.0.1, data in a temporary directory removed on exit")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.Token, "token", "", "bearer token required on every API request except health checks")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", "", "the cluster's shared secret (shoal keygen makes one): encrypts gossip and authenticates every node-to-node connection with mutual TLS; without it any process that reaches the cluster or gossip port can join")
	fs.StringVar(&c.ClusterTLSCert, "cluster-tls-cert", "", "PEM certificate of this node for the cluster port (your own PKI, instead of certificates derived from --cluster-secret)")
	fs.StringVar(&c.ClusterTLSKey, "cluster-tls-key", "", "PEM private key of --cluster-tls-cert")
	fs.StringVar(&c.ClusterTLSCA, "cluster-tls-ca", "", "PEM CA bundle that every node's cluster certificate chains to")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest accepted request body")
	fs.Func("cors-origins", "comma-separated origins (scheme://host[:port]) whose pages may call the API from a browser; a browser's write from any other origin is refused (403 origin_not_allowed)", func(s string) error {
		c.CORSOrigins = nil
		for o := range strings.SplitSeq(s, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.CORSOrigins = append(c.CORSOrigins, o)
			}
		}
		return api.ValidateOrigins(c.CORSOrigins)
	})
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) of the HTTP API: serve HTTPS only (TLS 1.2+); reloaded when the file changes or on SIGHUP")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM CA bundle: the API requires client certificates that chain to it")
	fs.IntVar(&c.MaxStreams, "http-max-streams", c.MaxStreams, "most event streams (SSE) open on this node, every module's (429 too_many_streams beyond; 0 = no bound)")
	fs.IntVar(&c.MaxStreamsPerClient, "http-max-streams-per-client", c.MaxStreamsPerClient, "most event streams one client (a token, or an address without one) may hold open on this node (0 = no bound)")
	fs.Float64Var(&c.RatePerClient, "http-rate", 0, "requests per second one client (a token, or an address without one) may send this node: 429 rate_limited beyond (0 = no limit; health checks exempt)")
	fs.IntVar(&c.RateBurst, "http-burst", 0, "burst of --http-rate (0 = the rate, rounded up)")
	fs.Func("min-free-disk", fmt.Sprintf("free space in the data directory's file system below which the cluster refuses writes (507 disk_full) until space is freed: bytes, or with KiB, MiB, GiB (default %dMiB; 0 = off)", c.MinFreeDisk>>20), func(s string) error {
		n, err := parseBytes(s)
		if err != nil {
			return fmt.Errorf("--min-free-disk: %w", err)
		}
		c.MinFreeDisk = n
		return nil
	})
	fs.DurationVar(&c.BodyTimeout, "http-body-timeout", c.BodyTimeout, "longest a client may take to send a request body (408 body_timeout beyond; 0 = no bound); headers are bounded at 10s")
	fs.Func("snapshot-threshold", fmt.Sprintf("raft log entries between snapshots (default %d)", c.SnapshotThreshold), func(s string) error {
		var v uint64
		if _, err := fmt.Sscan(s, &v); err != nil || v == 0 {
			return fmt.Errorf("want a positive integer")
		}
		c.SnapshotThreshold = v
		return nil
	})
	fs.Func("snapshot-bytes", fmt.Sprintf("also take a snapshot after this much raft log since the last one, which bounds what a restart replays: bytes, or with KiB, MiB, GiB (default %dMiB; 0 = entries only)", c.SnapshotBytes>>20), func(s string) error {
		n, err := parseBytes(s)
		if err != nil {
			return fmt.Errorf("--snapshot-bytes: %w", err)
		}
		c.SnapshotBytes = n
		return nil
	})
	fs.StringVar(&c.RaftLogStore, "raft-log-store", c.RaftLogStore, "raft log and stable store: wal (hashicorp/raft-wal) or bolt (raft-boltdb); with wal, a data directory holding a bolt store is migrated once at start (raft/raft.db becomes raft.db.migrated); a directory holding a wal refuses bolt")
	fs.IntVar(&c.RaftVoters, "raft-voters", consensus.DefaultConfig().MaxVoters, "size of the raft voter set: 1, 3, 5 or 7; autopilot keeps min(this, servers) voters (odd) and makes other servers non-voters (read replicas), replacing a voter down for 30s with a caught-up non-voter")
	fs.Func("role", "server (holds raft state: a voter or a read replica) or client (a light member: gossip and kv only; requests for raft modules are forwarded to a server over the cluster port) (default server)", func(s string) error {
		c.Role = membership.Role(s)
		if c.Role != membership.RoleServer && c.Role != membership.RoleClient {
			return fmt.Errorf("want server or client")
		}
		return nil
	})
	fs.IntVar(&c.RaftMultiplier, "raft-multiplier", 1, "scale raft's heartbeat (1s), election (1s) and leader lease (500ms) timeouts by this factor, 1 to 10: the leader sends each server 10 heartbeats a second divided by it, and a leader is replaced after about this many seconds; raise it on loaded or slow machines (docs/scaling.md)")
	fs.StringVar(&c.Zone, "zone", c.Zone, "this node's zone (rack, availability zone): raft voters are spread over zones")
	fs.DurationVar(&c.DeadNodeReap, "dead-node-reap", c.DeadNodeReap, "remove a server from raft after it has been dead this long (if quorum stays safe)")
	for _, info := range modules.Registered() {
		if info.NewConfig == nil {
			continue
		}
		mc := info.NewConfig()
		if b, ok := mc.(modules.FlagBinder); ok {
			b.BindFlags(fs)
		}
		f.moduleCfgs[info.ID] = mc
	}
	return f
}

// finish applies --dev and the list flags after parsing.
func (f *agentOptions) finish(given map[string]bool) (func(), error) {
	c := &f.cfg
	c.Version = Version
	c.ModuleConfigs = f.moduleCfgs
	if f.join != "" {
		for _, j := range strings.Split(f.join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				c.Join = append(c.Join, j)
			}
		}
	}
	if f.modules != "" {
		c.Modules = strings.Split(f.modules, ",")
	}
	cleanup := func() {}
	if f.dev {
		if !given["http-addr"] {
			c.HTTPAddr = "127.0.0.1:7480"
		}
		if !given["raft-addr"] {
			c.RaftAddr = "127.0.0.1:7481"
		}
		if !given["gossip-addr"] {
			c.GossipAddr = "127.0.0.1:7482"
		}
		if c.BootstrapExpect > 0 || len(c.Join) > 0 {
			return nil, fmt.Errorf("--dev runs a single node: it cannot be combined with --bootstrap-expect or --join")
		}
		c.BootstrapSelf = true
		c.Local = true
		if c.DataDir == "" {
			dir, err := os.MkdirTemp("", "shoal-dev-")
			if err != nil {
				return nil, fmt.Errorf("create dev data directory: %w", err)
			}
			c.DataDir = dir
			cleanup = func() { os.RemoveAll(dir) }
		}
	}
	return cleanup, nil
}

func runAgent(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shoal agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := newAgentOptions(fs)
	if len(args) == 1 && args[0] == describeArg {
		describeFlags(stdout, fs)
		return 0
	}
	fs.Usage = func() {} // -h prints agentUsage to stdout below; errors stay one line
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			agentUsage(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "Run 'shoal agent -h' for usage.\n")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := BindEnv(fs, envPrefix); err != nil {
		fmt.Fprintf(stderr, "shoal agent: %v\n", err)
		return 2
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for _, name := range []string{"http-addr", "raft-addr", "gossip-addr"} {
		if os.Getenv(EnvName(envPrefix, name)) != "" {
			given[name] = true
		}
	}
	cleanup, err := f.finish(given)
	if err != nil {
		fmt.Fprintf(stderr, "shoal agent: %v\n", err)
		return 2
	}
	defer cleanup()
	if err := f.cfg.Validate(); err != nil { // a usage error: say so before starting anything
		fmt.Fprintf(stderr, "shoal agent: %v\n", err)
		return 2
	}

	logger, err := logging.New(stderr, f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "shoal agent: %v\n", err)
		return 2
	}
	f.cfg.Logger = logger

	a, err := agent.New(f.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "shoal agent: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "shoal %s: node %s serving %s://%s\n", Version, f.cfg.NodeName, a.HTTPScheme(), a.HTTPAddr())

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	var sig os.Signal
wait:
	for {
		select {
		case <-hups:
			_ = a.ReloadTLS() // it logs the outcome
		case sig = <-sigs:
			break wait
		case <-a.Done():
			logger.Info("node left the cluster")
			return 0
		}
	}
	logger.Info("signal received; stopping (the node stays a cluster member: use 'shoal leave' to leave for good)", "signal", sig.String())
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			logger.Error("stop", "err", err)
			return 1
		}
	case <-sigs:
		logger.Warn("second signal: exiting without a clean stop")
		return 1
	}
	return 0
}

// agentUsage prints the agent's help to w: what it does, how the
// environment sets its flags, and the flags.
func agentUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "Usage:\n  shoal agent [flags]\n\n"+
		"Run a shoal node until interrupted (SIGINT or SIGTERM stop it; the node\n"+
		"stays a member: 'shoal leave' leaves for good). SIGHUP reloads --tls-cert.\n\n"+
		"Environment:\n"+
		"  Every flag can also be set with an environment variable: SHOAL_ and the\n"+
		"  flag's name upper-cased, dashes as underscores (--raft-addr is\n"+
		"  SHOAL_RAFT_ADDR, --data-dir is SHOAL_DATA_DIR, --cluster-secret is\n"+
		"  SHOAL_CLUSTER_SECRET). A flag on the command line wins over its variable;\n"+
		"  empty variables are ignored.\n\nFlags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// parseBytes reads a size: a number of bytes, optionally followed by a
// unit, binary (KiB, MiB, GiB, TiB) or decimal (B, KB, MB, GB, TB):
// "256MiB", "1GB", "4096".
func parseBytes(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB, GiB, TiB or KB, MB, GB, TB)", s)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB, GiB, TiB or KB, MB, GB, TB)", s)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// byteUnits are the units parseBytes accepts.
var byteUnits = map[string]uint64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
}
