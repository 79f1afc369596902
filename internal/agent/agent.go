package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"shoal/api"
	"shoal/consensus"
	"shoal/internal/clusterport"
	"shoal/internal/keyring"
	"shoal/internal/peerrpc"
	"shoal/membership"
	"shoal/modules"
)

// Agent is one running shoal node.
type Agent struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry

	mods     *modules.Manager
	ring     *keyring.Ring // nil without a cluster secret
	security SecurityStatus
	port     *clusterport.Port
	node     *consensus.Node
	members  *membership.Membership
	// gossip is members, published for the consensus goroutines that may
	// start asking for it (a restarted leader's autopilot) before it is set.
	gossip atomic.Pointer[membership.Membership]
	// raftNode is node, published for the same reason: consensus's own
	// goroutines call back into the agent while consensus.New runs.
	raftNode atomic.Pointer[consensus.Node]
	leader   *leadershipRelay
	peers    *peerClient     // calls to other nodes, over the cluster port
	rpc      *peerrpc.Server // calls from other nodes
	// apiHandler is the API's handler, published for peer calls that
	// serve forwarded leader-only requests (leaderapi.go).
	apiHandler atomic.Pointer[http.Handler]
	// forward carries a client's Raft-module requests to a server (nil on
	// servers); forwarded serves them on a server (nil on clients).
	forward   *apiForwarder
	forwarded *forwardedAPI
	// apiCert is the API's TLS certificate (nil without --tls-cert).
	apiCert *apiCert
	// disk is the disk alarm (nil with MinFreeDisk 0).
	disk *diskAlarm

	httpLn  net.Listener
	httpSrv *http.Server

	httpAddr, raftAddr, gossipAddr string // advertised, with real ports

	stopping  atomic.Bool
	killed    bool            // set under stopOnce: stop abruptly
	ctx       context.Context // cancelled on Stop; owns background goroutines
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once
	stopErr   error
	done      chan struct{} // closed when Stop has finished
	leaveOnce sync.Once
}

// New builds and starts a node: it listens on every address, opens Raft,
// joins gossip, starts the modules and serves the API. If any step fails,
// what was started is stopped again.
func New(cfg Config) (_ *Agent, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a := &Agent{
		cfg:      cfg,
		logger:   cfg.Logger.With("node", cfg.NodeName),
		registry: prometheus.NewRegistry(),
		done:     make(chan struct{}),
	}
	if err := checkLeft(cfg.DataDir, cfg.Rejoin, a.logger.Warn); err != nil {
		return nil, err
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			a.stopAll(context.Background())
		}
	}()

	httpHost, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	adv, err := advertiseHost(cfg.Advertise, httpHost)
	if err != nil {
		return nil, err
	}
	if a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen for http on %s: %w", cfg.HTTPAddr, err)
	}
	a.httpAddr = net.JoinHostPort(adv, strconv.Itoa(a.httpLn.Addr().(*net.TCPAddr).Port))

	a.leader = newLeadershipRelay(a.logger)

	infos, err := modules.Resolve(cfg.Modules)
	if err != nil {
		return nil, err
	}
	if cfg.IsClient() {
		infos = withoutRaftModules(infos)
	}
	a.mods, err = modules.NewManager(infos, cfg.ModuleConfigs, a.newHost)
	if err != nil {
		return nil, err
	}

	if err := a.startClusterPort(); err != nil {
		return nil, err
	}
	if cfg.IsClient() {
		a.raftAddr = net.JoinHostPort(adv, strconv.Itoa(a.port.Addr().(*net.TCPAddr).Port))
		if a.forward, err = newAPIForwarder(a); err != nil {
			return nil, err
		}
	} else if err := a.startConsensus(adv); err != nil {
		return nil, err
	}
	a.serveCluster()
	if err := a.startMembership(adv); err != nil {
		return nil, err
	}
	if err := a.mods.Start(a.ctx); err != nil {
		return nil, err
	}
	a.leader.attach(a.mods.Modules())
	if cfg.MinFreeDisk > 0 {
		free := cfg.DiskFree
		if free == nil {
			free = statfsFree
		}
		a.disk = &diskAlarm{free: free, min: cfg.MinFreeDisk}
		if err := a.registerDiskMetrics(); err != nil {
			return nil, err
		}
		a.checkDisk() // before the first request, not a second later
		a.refreshAlarms()
		a.wg.Add(1)
		go a.watchDisk()
	}

	deps := api.Deps{
		NodeName:            cfg.NodeName,
		Version:             cfg.Version,
		Members:             a.members,
		Modules:             a.mods,
		Registry:            a.registry,
		Token:               cfg.Token,
		MaxBodyBytes:        cfg.MaxBodyBytes,
		BodyTimeout:         cfg.BodyTimeout,
		CORSOrigins:         cfg.CORSOrigins,
		MaxStreams:          cfg.MaxStreams,
		MaxStreamsPerClient: cfg.MaxStreamsPerClient,
		RatePerClient:       cfg.RatePerClient,
		RateBurst:           cfg.RateBurst,
		Logger:              a.logger.With("component", "api"),
		Stopping:            a.stopping.Load,
		Leave:               a.leaveAsync,
		Security:            func() any { return a.Security() },
		Keyring: func(ctx context.Context, op, key string) (any, error) {
			return a.KeyringOp(ctx, op, key)
		},
		OnLeader: a.ForwardToLeader,
		Alarms:   a.DiskAlarms,
	}
	if a.forward != nil {
		deps.Forward = a.forward
		tokens := newRemoteTokens(a.forward)
		deps.Tokens = tokens
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			tokens.run(a.ctx)
		}()
	} else {
		deps.Raft = a.node // never a nil *Node in the interface
	}
	handler, err := api.New(deps)
	if err != nil {
		return nil, err
	}
	a.apiHandler.Store(&handler)
	// HTTP/1.1 for curl and browsers, and HTTP/2 over cleartext with prior
	// knowledge (h2c) for clients that multiplex many requests on one
	// connection, as the Go client can (client.WithHTTP2).
	// With --tls-cert, HTTP/1.1 and HTTP/2 over TLS only.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	a.httpSrv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Protocols:         protocols,
		ErrorLog:          nil,
	}
	ln := a.httpLn
	if cfg.TLSCert != "" {
		if a.apiCert, err = newAPICert(cfg.TLSCert, cfg.TLSKey, a.logger.With("component", "api")); err != nil {
			return nil, err
		}
		tcfg, err := apiTLSConfig(a.apiCert, cfg.TLSClientCA)
		if err != nil {
			return nil, err
		}
		protocols.SetHTTP2(true)
		a.httpSrv.TLSConfig = tcfg
		tcfg.NextProtos = []string{"h2", "http/1.1"}
		ln = tls.NewListener(ln, tcfg)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("http server stopped", "err", err)
		}
	}()

	a.startClustering()
	role := "joining"
	switch {
	case cfg.IsClient():
		role = "client: joining gossip, forwarding raft modules' requests to servers"
	case cfg.BootstrapSelf:
		role = "bootstrapped a one-node cluster"
	case a.cfg.Recover:
		role = "recovered: the only voter of its cluster"
	case a.node.HadState():
		role = "rejoining its cluster"
	case cfg.BootstrapExpect > 0:
		role = fmt.Sprintf("waiting for %d servers to bootstrap", cfg.BootstrapExpect)
	}
	a.logger.Info("http api listening", "addr", a.httpLn.Addr().String(), "advertise", a.httpAddr)
	a.logger.Info("raft listening", "advertise", a.raftAddr)
	a.logger.Info("gossip listening", "advertise", a.gossipAddr)
	a.logger.Info("node started", "role", role, "modules", a.mods.IDs(), "version", cfg.Version)
	return a, nil
}

func (a *Agent) startConsensus(advHost string) error {
	ccfg := consensus.DefaultConfig()
	ccfg.NodeID = a.cfg.NodeName
	ccfg.Dir = filepath.Join(a.cfg.DataDir, "raft")
	ccfg.AdvertiseAddr = net.JoinHostPort(advHost, portOf(a.cfg.RaftAddr))
	ccfg.SnapshotThreshold = a.cfg.SnapshotThreshold
	ccfg.SnapshotBytes = a.cfg.SnapshotBytes
	if a.cfg.SnapshotInterval > 0 {
		ccfg.SnapshotInterval = a.cfg.SnapshotInterval
	}
	ccfg.DeadNodeReap = a.cfg.DeadNodeReap
	ccfg.Recover = a.cfg.Recover
	if a.cfg.RaftVoters != 0 {
		ccfg.MaxVoters = a.cfg.RaftVoters
	}
	if a.cfg.RaftLogStore != "" {
		ccfg.LogStore = a.cfg.RaftLogStore
	}
	if a.cfg.Local {
		ccfg.Timing = consensus.LocalTiming()
		ccfg.Stabilization = 500 * time.Millisecond
		ccfg.ReconcileInterval = 200 * time.Millisecond
		ccfg.VoterGrace = 2 * time.Second
		if a.cfg.SnapshotThreshold < ccfg.TrailingLogs {
			ccfg.TrailingLogs = a.cfg.SnapshotThreshold
		}
	}
	ccfg.Timing = ccfg.Timing.Scaled(a.cfg.RaftMultiplier)
	if a.cfg.RaftCommitTimeout > 0 {
		ccfg.Timing.CommitTimeout = a.cfg.RaftCommitTimeout
	}
	if a.cfg.RaftCommitNoticeHold > 0 {
		ccfg.Timing.CommitNoticeHold = a.cfg.RaftCommitNoticeHold
	}
	ccfg.OnElected = a.cfg.OnElected
	ccfg.Logger = a.logger.With("component", "raft")
	ccfg.Registerer = a.registry

	var handlers []modules.RaftHandler
	for _, m := range a.mods.Modules() {
		if h, ok := m.(modules.RaftHandler); ok {
			handlers = append(handlers, h)
		}
	}
	fsm, err := consensus.NewFSM(handlers, ccfg.Logger, a.registry)
	if err != nil {
		return err
	}
	a.node, err = consensus.New(ccfg, fsm, consensus.Deps{
		Port:         a.port,
		Forwarder:    a.peers,
		Cluster:      clusterView{a},
		OnLeadership: a.leader.set,
	})
	if err != nil {
		return err
	}
	a.raftNode.Store(a.node)
	a.raftAddr = a.node.Addr()
	if a.cfg.BootstrapSelf {
		if err := a.node.BootstrapSelf(); err != nil {
			return err
		}
	}
	return nil
}

// startClusterPort opens the cluster port (Raft, peer calls and streams,
// all authenticated by it) and the peer RPC client and server on it.
func (a *Agent) startClusterPort() error {
	sec, err := a.openSecurity()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("listen for the cluster port on %s: %w", a.cfg.RaftAddr, err)
	}
	a.port, err = clusterport.New(ln, clusterport.Config{
		NodeName:   a.cfg.NodeName,
		Security:   sec,
		Dial:       a.cfg.Gate.DialContext, // a nil gate dials directly
		Logger:     a.logger.With("component", "clusterport"),
		Registerer: a.registry,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	a.peers = &peerClient{a: a, rpc: peerrpc.NewClient(a.port, peerrpc.ClientConfig{
		DecodeError: peerCodec.decode,
		Logger:      a.logger.With("component", "peerrpc"),
	})}
	a.rpc, err = peerrpc.NewServer(a.port, peerrpc.ServerConfig{
		EncodeError: peerCodec.encode,
		Logger:      a.logger.With("component", "peerrpc"),
		Registerer:  a.registry,
	})
	return err
}

// serveCluster registers what this node serves other nodes: consensus
// and forwarded requests on a server, keyring and module calls on every
// node.
func (a *Agent) serveCluster() {
	if a.node != nil {
		a.serveConsensus(a.rpc)
		a.rpc.Handle(methodLeaderAPI, a.serveLeaderAPI)
		a.forwarded = a.serveForwardedAPI()
		a.serveTokens()
	}
	a.serveKeyring(a.rpc)
	a.serveModules(a.rpc)
}

func (a *Agent) startMembership(advHost string) error {
	mcfg := membership.DefaultConfig()
	mcfg.NodeName = a.cfg.NodeName
	mcfg.BindAddr = a.cfg.GossipAddr
	gossipHost, err := a.resolveAdvertised(advHost)
	if err != nil {
		return err
	}
	mcfg.AdvertiseAddr = net.JoinHostPort(gossipHost, portOf(a.cfg.GossipAddr))
	mcfg.Meta = membership.Meta{
		HTTPAddr:        a.httpAddr,
		RaftAddr:        a.raftAddr,
		Modules:         a.mods.IDs(),
		RaftModules:     a.raftModuleIDs(),
		Version:         a.cfg.Version,
		BootstrapExpect: a.cfg.BootstrapExpect,
		Zone:            a.cfg.Zone,
		Role:            membership.RoleServer,
	}
	if a.node != nil {
		mcfg.Meta.HasRaftState = a.node.HasState()
	} else {
		mcfg.Meta.Role = membership.RoleClient
	}
	if a.cfg.Local {
		mcfg.Timing = membership.LocalTiming()
		mcfg.RetryJoinMin = 100 * time.Millisecond
		mcfg.RetryJoinMax = time.Second
	}
	if a.ring != nil {
		mcfg.Keyring = a.ring.Gossip()
	}
	mcfg.Logger = a.logger.With("component", "gossip")
	mcfg.Registerer = a.registry
	if gate := a.cfg.Gate; gate != nil {
		mcfg.WrapTransport = gateTransport(gate)
	}
	if a.members, err = membership.New(mcfg); err != nil {
		return err
	}
	a.gossip.Store(a.members)
	a.gossipAddr = a.members.LocalMember().Addr
	for _, m := range a.mods.Modules() {
		if h, ok := m.(modules.GossipHandler); ok {
			a.members.Channel(byte(h.Tag())).SetHandler(h)
		}
	}
	return nil
}

// startClustering starts the background work that puts the node in a
// cluster: joining gossip seeds, bootstrap-expect, and keeping the node's
// gossip meta in step with its Raft state.
func (a *Agent) startClustering() {
	if len(a.cfg.Join) > 0 {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.members.RetryJoin(a.ctx, a.cfg.Join); err == nil {
				a.logger.Info("joined gossip", "seeds", a.cfg.Join)
			}
		}()
	}
	if a.cfg.BootstrapExpect > 0 {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.node.RunBootstrapExpect(a.ctx, a.cfg.BootstrapExpect)
		}()
	}
	if a.node != nil && !a.node.HasState() {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.announceRaftState()
		}()
	}
}

// announceRaftState flips HasRaftState in the gossip meta once the node has
// joined a Raft cluster, so no other node bootstraps a second cluster.
func (a *Agent) announceRaftState() {
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-ticker.C:
		}
		if a.node.HasState() {
			if err := a.members.UpdateMeta(func(m *membership.Meta) { m.HasRaftState = true }); err != nil {
				a.logger.Warn("announce raft state", "err", err)
				continue
			}
			return
		}
	}
}

// advertiseResolveWait is how long a node waits at start for its own
// advertised name to resolve: a Kubernetes pod's DNS record through a
// headless Service appears a moment after the pod starts.
const advertiseResolveWait = 30 * time.Second

// resolveAdvertised resolves the advertised host for gossip, which
// announces an IP address (memberlist requires one), retrying while the
// name does not resolve yet. Raft and HTTP keep the name itself: it
// survives a restart that changes the IP.
func (a *Agent) resolveAdvertised(host string) (string, error) {
	deadline := time.Now().Add(advertiseResolveWait)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		ip, err := resolveHost(host)
		if err == nil || time.Now().After(deadline) {
			return ip, err
		}
		a.logger.Info("the advertised host does not resolve yet; retrying", "host", host, "err", err)
		time.Sleep(wait) // start-up only: nothing else runs on this node yet
	}
}

// withoutRaftModules drops the modules that keep state in Raft: a client
// runs the others (kv) and forwards the requests of these to a server.
func withoutRaftModules(infos []modules.Info) []modules.Info {
	out := make([]modules.Info, 0, len(infos))
	for _, info := range infos {
		if _, raft := info.New().(modules.RaftHandler); !raft {
			out = append(out, info)
		}
	}
	return out
}

// raftModuleIDs lists the enabled modules that keep state in Raft, sorted.
func (a *Agent) raftModuleIDs() []string {
	var ids []string
	for _, m := range a.mods.Modules() {
		if _, ok := m.(modules.RaftHandler); ok {
			ids = append(ids, m.ID())
		}
	}
	slices.Sort(ids)
	return ids
}

// resolveHost turns a host name into an IP address: gossip advertises
// addresses, not names (--advertise may be a container's host name).
func resolveHost(host string) (string, error) {
	if net.ParseIP(host) != nil {
		return host, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return "", fmt.Errorf("resolve advertise host %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolve advertise host %q: no address", host)
	}
	return ips[0].String(), nil
}

func portOf(hostport string) string {
	_, port, _ := net.SplitHostPort(hostport)
	return port
}

// NodeName is the node's name.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// HTTPAddr is the advertised host:port of the HTTP API.
func (a *Agent) HTTPAddr() string { return a.httpAddr }

// RaftAddr is the advertised host:port of the Raft transport.
func (a *Agent) RaftAddr() string { return a.raftAddr }

// GossipAddr is the advertised host:port of gossip.
func (a *Agent) GossipAddr() string { return a.gossipAddr }

// Raft exposes the node's consensus layer (tests inspect it).
func (a *Agent) Raft() *consensus.Node { return a.node }

// Members exposes the node's membership (tests inspect it).
func (a *Agent) Members() *membership.Membership { return a.members }

// Registry is the node's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.registry }

// Module returns the enabled module with the given ID.
func (a *Agent) Module(id string) (modules.Module, bool) {
	for _, m := range a.mods.Modules() {
		if m.ID() == id {
			return m, true
		}
	}
	return nil, false
}

// Done is closed when the agent has stopped (after Stop or a leave).
func (a *Agent) Done() <-chan struct{} { return a.done }

// Stop is the restart-friendly stop: the node reports not ready, hands
// leadership to another voter, stops serving, stops the modules, shuts Raft
// down cleanly and closes its stores. It does not leave the cluster: the
// node stays in the Raft configuration, so a rolling restart never shrinks
// the voter set. Stop is idempotent.
func (a *Agent) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() {
		a.stopping.Store(true)
		a.logger.Info("stopping")
		if a.node != nil {
			if err := a.node.StepDown(); err != nil {
				a.logger.Warn("leadership transfer", "err", err)
			}
		}
		a.stopErr = a.stopAll(ctx)
		a.logger.Info("stopped")
		close(a.done)
	})
	<-a.done
	return a.stopErr
}

// Kill stops the node abruptly, as far as the rest of the cluster can tell:
// no leadership transfer, no gossip leave, connections dropped. Tests use it
// to model a crash in-process (acknowledged writes were fsynced already).
func (a *Agent) Kill() error {
	a.stopOnce.Do(func() {
		a.stopping.Store(true)
		a.killed = true
		a.stopErr = a.stopAll(context.Background())
		close(a.done)
	})
	<-a.done
	return a.stopErr
}

// stopAll stops whatever was started, in reverse order.
func (a *Agent) stopAll(ctx context.Context) error {
	var errs []error
	a.cancel()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var shutdowns []func() error
	if a.httpSrv != nil {
		shutdowns = append(shutdowns, a.shutdownHTTP(sctx, a.httpSrv))
	} else if a.httpLn != nil {
		errs = append(errs, a.httpLn.Close())
	}
	if a.forwarded != nil {
		shutdowns = append(shutdowns, a.shutdownHTTP(sctx, a.forwarded.srv))
	}
	if a.mods != nil {
		a.leader.detach()
		errs = append(errs, a.mods.Stop(ctx)) // ends streams so Shutdown can finish
	}
	for _, wait := range shutdowns {
		errs = append(errs, wait())
	}
	if a.forward != nil {
		a.forward.close()
	}
	if a.node != nil && a.killed {
		errs = append(errs, a.node.Close())
	} else if a.node != nil {
		errs = append(errs, a.node.Shutdown())
	}
	if a.rpc != nil {
		errs = append(errs, a.rpc.Close())
	}
	if a.peers != nil {
		errs = append(errs, a.peers.rpc.Close())
	}
	if a.members != nil {
		errs = append(errs, a.members.Shutdown())
	}
	if a.port != nil {
		errs = append(errs, a.port.Close())
	}
	a.wg.Wait()
	return errors.Join(errs...)
}

// shutdownHTTP starts stopping srv (gracefully unless the node is killed)
// and returns the wait for it: a server still busy at ctx's end is closed.
func (a *Agent) shutdownHTTP(ctx context.Context, srv *http.Server) func() error {
	if a.killed {
		err := srv.Close()
		return func() error { return err }
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	return func() error {
		if err := <-done; err != nil {
			return srv.Close()
		}
		return nil
	}
}

// Leave removes the node from the cluster for good: it hands leadership
// away, announces a gossip leave (the leader's autopilot then removes it
// from Raft), waits until it is out of the Raft configuration, and stops.
func (a *Agent) Leave(ctx context.Context) error {
	var err error
	a.leaveOnce.Do(func() {
		a.stopping.Store(true)
		a.logger.Info("leaving the cluster")
		if a.node != nil {
			if terr := a.node.StepDown(); terr != nil {
				a.logger.Warn("leadership transfer before leave", "err", terr)
			}
		}
		if lerr := a.members.Leave(5 * time.Second); lerr != nil {
			a.logger.Warn("gossip leave", "err", lerr)
		}
		if a.node != nil {
			a.waitRemoved(ctx) // a client is in no Raft configuration
		}
		if merr := markLeft(a.cfg.DataDir); merr != nil {
			a.logger.Error("the leave marker could not be written: a restart would rejoin", "err", merr)
		}
		err = a.Stop(ctx)
	})
	<-a.done
	return err
}

// leaveAsync starts a leave from an API request, which must not wait for the
// server that serves it to shut down.
func (a *Agent) leaveAsync() {
	go func() {
		if err := a.Leave(context.Background()); err != nil {
			a.logger.Error("leave", "err", err)
		}
	}()
}

// waitRemoved waits (bounded) until this node is out of the Raft
// configuration, or is the last server (nobody is left to remove it). It
// asks the leader: once removed, this node stops receiving the log, so its
// own copy of the configuration may never show the removal.
func (a *Agent) waitRemoved(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		if removed, err := a.removedFromRaft(ctx); err == nil && removed {
			return
		}
		select {
		case <-ctx.Done():
			a.logger.Warn("still in the raft configuration after leaving; stopping anyway")
			return
		case <-ticker.C:
		}
	}
}

func (a *Agent) removedFromRaft(ctx context.Context) (bool, error) {
	cfg, err := a.node.Configuration()
	if err != nil {
		return false, err
	}
	present, others := false, 0
	for _, s := range cfg.Servers {
		if string(s.ID) == a.cfg.NodeName {
			present = true
		} else {
			others++
		}
	}
	if !present || others == 0 {
		return true, nil
	}
	leaderID, _ := a.node.Leader()
	if leaderID == "" || a.node.IsLeader() {
		return false, nil
	}
	ids, err := a.peers.leaderServers(ctx, leaderID)
	if err != nil {
		return false, err
	}
	return !slices.Contains(ids, a.cfg.NodeName), nil
}

// ReloadTLS reads the API's TLS certificate and key again (SIGHUP). It is
// a no-op without --tls-cert; on error the previous pair keeps serving.
func (a *Agent) ReloadTLS() error {
	if a.apiCert == nil {
		return nil
	}
	return a.apiCert.Reload()
}

// HTTPScheme is "https" when the API serves TLS, else "http".
func (a *Agent) HTTPScheme() string {
	if a.apiCert != nil {
		return "https"
	}
	return "http"
}
