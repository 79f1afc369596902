package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServerModule and natsServerVersion name the NATS server the log
// scenario compares with. It is built from the Go module proxy because
// Debian's nats-server (2.9) predates the JetStream durability settings
// the comparison needs.
const (
	natsServerModule  = "github.com/nats-io/nats-server/v2"
	natsServerVersion = "v2.15.3"
)

// jetstreamStream and jetstreamSubject are the stream the scenario
// publishes to and its one subject.
const (
	jetstreamStream  = "BENCH"
	jetstreamSubject = "bench"
)

// jetstreamDupWindow is the stream's duplicate window: within it the
// server remembers every Nats-Msg-Id, as shoal's log remembers publish
// ids, so that a retried publish is stored once. It covers a whole run.
const jetstreamDupWindow = 2 * time.Minute

// jetstreamServer is one server of the benchmark's JetStream cluster.
type jetstreamServer struct {
	name      string
	clientURL string // nats://127.0.0.1:port
	httpAddr  string // monitoring, 127.0.0.1:port
	proc      *proc
}

// jetstreamCluster is a NATS cluster with JetStream started by the
// benchmark.
type jetstreamCluster struct {
	bin     string
	servers []*jetstreamServer
}

// findNatsServer returns the path of the nats-server binary, building it
// with `go install` into the user's cache directory the first time
// ($XDG_CACHE_HOME or ~/.cache, shoal-bench/nats-server-<version>/), so
// later runs reuse it.
func findNatsServer(ctx context.Context, out io.Writer) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find nats-server: %w", err)
	}
	root := filepath.Join(cache, "shoal-bench")
	dir := filepath.Join(root, "nats-server-"+natsServerVersion)
	bin := filepath.Join(dir, "nats-server")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	fmt.Fprintf(out, "building nats-server %s into %s (once; about two minutes)\n", natsServerVersion, dir)
	if err := os.MkdirAll(root, 0o750); err != nil {
		return "", fmt.Errorf("create %s: %w", root, err)
	}
	// go install writes into a fresh directory that is renamed into
	// place only when the build succeeded: an interrupted build must not
	// leave a binary that a later run would take for a good one.
	tmp, err := os.MkdirTemp(root, ".nats-server-build-")
	if err != nil {
		return "", fmt.Errorf("build nats-server: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "install", natsServerModule+"@"+natsServerVersion)
	cmd.Dir = tmp // outside any module: go install pkg@version ignores go.mod files anyway
	cmd.Env = append(os.Environ(), "GOBIN="+tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nats-server: go install: %w\n%s", err, bytes.TrimSpace(b))
	}
	// A directory without the binary (an earlier failed attempt) would
	// make the rename fail.
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("build nats-server: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("build nats-server: %w", err)
	}
	return bin, nil
}

// natsServerDescription returns the server's version and the Go that
// built it, for the report.
func natsServerDescription(ctx context.Context, bin string) string {
	v := strings.TrimPrefix(versionLine(ctx, bin, "--version"), "nats-server: ")
	goVersion := "go unknown"
	if out, err := command(ctx, "", "go", "version", bin); err == nil {
		if _, after, ok := strings.Cut(strings.TrimSpace(string(out)), ": "); ok {
			goVersion = after
		}
	}
	return fmt.Sprintf("nats-server %s (JetStream, sync_interval: always; built with %s)", v, goVersion)
}

// startJetStream starts n clustered servers with JetStream on loopback
// ports, each with its own store directory. It returns once the
// processes are started: see wait.
func startJetStream(e *env, bin string, n int) (*jetstreamCluster, error) {
	c := &jetstreamCluster{bin: bin}
	routes := make([]string, n)
	clusterAddrs := make([]string, n)
	for i := range n {
		s := &jetstreamServer{name: fmt.Sprintf("j%d", i+1)}
		var clientAddr string
		for _, a := range []*string{&clientAddr, &s.httpAddr, &clusterAddrs[i]} {
			addr, err := e.port()
			if err != nil {
				return nil, err
			}
			*a = addr
		}
		s.clientURL = "nats://" + clientAddr
		routes[i] = "nats-route://" + clusterAddrs[i]
		c.servers = append(c.servers, s)
	}
	for i, s := range c.servers {
		conf := e.path("jetstream-" + s.name + ".conf")
		if err := os.WriteFile(conf, jetstreamConfig(s, clusterAddrs[i], routes, e.path("data", "jetstream-"+s.name)), 0o600); err != nil {
			return nil, fmt.Errorf("write config of %s: %w", s.name, err)
		}
		p, err := e.start("jetstream-"+s.name, bin, "-c", conf)
		if err != nil {
			return nil, err
		}
		s.proc = p
	}
	return c, nil
}

// jetstreamConfig returns the configuration file of server s.
//
// sync_interval: always makes every write to the store and to the Raft
// logs reach the disk (fsync) before it is acknowledged, as shoal's and
// etcd's logs do; by default JetStream syncs every two minutes, which
// would compare an fsync per commit with none. In nats-server 2.15 a
// replicated stream then fsyncs its Raft log on every append and its
// message store at each snapshot (stream.go: SyncAlways with Replicas > 1
// becomes SyncOnFlush): the same durability as a Raft log, which is what
// shoal and etcd give too. Every route is listed on every server (a
// server ignores the route to itself), so the cluster forms whatever the
// start order.
func jetstreamConfig(s *jetstreamServer, clusterAddr string, routes []string, storeDir string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\n", s.name)
	fmt.Fprintf(&b, "listen: %q\n", strings.TrimPrefix(s.clientURL, "nats://"))
	fmt.Fprintf(&b, "http: %q\n", s.httpAddr)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", storeDir)
	fmt.Fprintf(&b, "cluster {\n  name: \"shoal-bench\"\n  listen: %q\n  routes: [\n", clusterAddr)
	for _, r := range routes {
		fmt.Fprintf(&b, "    %q\n", r)
	}
	b.WriteString("  ]\n}\n")
	return []byte(b.String())
}

// jsz is the part of a server's /jsz monitoring page the benchmark reads.
type jsz struct {
	Config struct {
		SyncAlways bool `json:"sync_always"`
	} `json:"config"`
	Meta *struct {
		Leader   string `json:"leader"`
		Size     int    `json:"cluster_size"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

// getJSZ fetches and decodes http://addr/jsz.
func getJSZ(ctx context.Context, addr string) (jsz, error) {
	var z jsz
	body, err := getPage(ctx, addr, "/jsz")
	if err != nil {
		return z, err
	}
	defer body.Close()
	if err := json.NewDecoder(body).Decode(&z); err != nil {
		return z, fmt.Errorf("decode %s/jsz: %w", addr, err)
	}
	return z, nil
}

// wait polls until every server reports the same JetStream meta leader
// in a meta group of all servers, with every peer current, and fsyncs on
// every write; it fails at the deadline or as soon as a server exits.
func (c *jetstreamCluster) wait(ctx context.Context, timeout time.Duration) error {
	return pollReady(ctx, timeout, "jetstream cluster not ready", jetstreamProcs(c), c.check)
}

func (c *jetstreamCluster) check(ctx context.Context) error {
	leaders := map[string]bool{}
	for _, s := range c.servers {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		z, err := getJSZ(rctx, s.httpAddr)
		cancel()
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", s.name, err)
		case !z.Config.SyncAlways:
			// A wrong key in the configuration would otherwise only show
			// up as a suspiciously fast JetStream.
			return fmt.Errorf("%s: %w", s.name, errNoSyncAlways)
		case z.Meta == nil || z.Meta.Leader == "":
			return fmt.Errorf("%s: no meta leader", s.name)
		case z.Meta.Size != len(c.servers):
			return fmt.Errorf("%s: meta group of %d servers, want %d", s.name, z.Meta.Size, len(c.servers))
		}
		if z.Meta.Leader == s.name {
			if len(z.Meta.Replicas) != len(c.servers)-1 {
				return fmt.Errorf("%s (meta leader): %d followers, want %d", s.name, len(z.Meta.Replicas), len(c.servers)-1)
			}
			for _, r := range z.Meta.Replicas {
				if !r.Current {
					return fmt.Errorf("%s (meta leader): follower %s not current", s.name, r.Name)
				}
			}
		}
		leaders[z.Meta.Leader] = true
	}
	if len(leaders) != 1 {
		return fmt.Errorf("servers disagree on the meta leader: %v", leaders)
	}
	return nil
}

// errNoSyncAlways: a server did not take sync_interval: always from its
// configuration.
var errNoSyncAlways = errors.New("jetstream does not fsync every write (sync_always is off)")

// jetstreamConn is one client connection to one server, with its
// JetStream context.
type jetstreamConn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	closed chan struct{} // closed by the library's last callback
}

// connect opens a connection to server i only: it neither picks another
// server from the cluster's gossip nor randomizes, so that the clients
// stay spread as the benchmark placed them. Close it when done.
func (c *jetstreamCluster) connect(i int) (*jetstreamConn, error) {
	s := c.servers[i]
	jc := &jetstreamConn{closed: make(chan struct{})}
	nc, err := nats.Connect(s.clientURL,
		nats.Name("shoal-bench-"+s.name),
		nats.IgnoreDiscoveredServers(),
		nats.DontRandomize(),
		nats.Timeout(5*time.Second),
		nats.ClosedHandler(func(*nats.Conn) { close(jc.closed) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		<-jc.closed
		return nil, fmt.Errorf("jetstream context on %s: %w", s.name, err)
	}
	jc.nc, jc.js = nc, js
	return jc, nil
}

// close closes the connection and waits, for a bounded time, until the
// library ran its last callback: its goroutines are then winding down.
func (jc *jetstreamConn) close() {
	jc.nc.Close()
	select {
	case <-jc.closed:
	case <-time.After(stopTimeout):
	}
}

// createStream creates the benchmark's stream (file storage, one
// replica on every server, a duplicate window) and waits until it has a
// leader and every replica is current.
func (c *jetstreamCluster) createStream(ctx context.Context, jc *jetstreamConn, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := jc.js.CreateStream(cctx, jetstream.StreamConfig{
		Name:       jetstreamStream,
		Subjects:   []string{jetstreamSubject},
		Storage:    jetstream.FileStorage,
		Replicas:   len(c.servers),
		Duplicates: jetstreamDupWindow,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", jetstreamStream, err)
	}
	return pollReady(ctx, timeout, "jetstream stream not ready", jetstreamProcs(c), func(ctx context.Context) error {
		_, err := c.streamLeader(ctx, jc, true)
		return err
	})
}

// streamLeader returns the index in servers of the stream's leader; with
// allCurrent, it fails unless every follower is current too.
func (c *jetstreamCluster) streamLeader(ctx context.Context, jc *jetstreamConn, allCurrent bool) (int, error) {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := jc.js.Stream(ictx, jetstreamStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", jetstreamStream, err)
	}
	info, err := st.Info(ictx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", jetstreamStream, err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return 0, fmt.Errorf("stream %s: no leader", jetstreamStream)
	}
	if allCurrent {
		if len(info.Cluster.Replicas) != len(c.servers)-1 {
			return 0, fmt.Errorf("stream %s: %d followers, want %d", jetstreamStream, len(info.Cluster.Replicas), len(c.servers)-1)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return 0, fmt.Errorf("stream %s: follower %s not current", jetstreamStream, r.Name)
			}
		}
	}
	for i, s := range c.servers {
		if s.name == info.Cluster.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("stream %s: leader %s is not one of the started servers", jetstreamStream, info.Cluster.Leader)
}

func jetstreamProcs(c *jetstreamCluster) []*proc {
	ps := make([]*proc, len(c.servers))
	for i, s := range c.servers {
		ps[i] = s.proc
	}
	return ps
}
