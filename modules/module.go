package modules

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Module is what every module implements. The lifecycle is always, and
// only, in this order: the factory in Info.New (no side effects), Provision
// (wire hooks, validate config; no goroutines, no listeners), Start (may
// start goroutines, owned by the module), Stop (stops and waits for every
// goroutine the module started). Provision and Start are called once; Stop
// is called once if and only if Start succeeded.
type Module interface {
	// ID returns the module's registered ID.
	ID() string
	// Provision gives the module its host handle. It must not block or
	// start goroutines; it returns an error for invalid configuration.
	Provision(host Host) error
	// Start starts the module's background work. ctx is cancelled when the
	// node stops; Start itself must return promptly.
	Start(ctx context.Context) error
	// Stop stops the module and waits for its goroutines, closing any
	// long-lived connections it tracks (SSE streams, websockets):
	// http.Server.Shutdown does not close hijacked or streaming responses.
	Stop(ctx context.Context) error
}

// Config is a module's configuration, created by Info.NewConfig with its
// defaults and filled from flags or by tests.
type Config interface {
	// Validate reports the first invalid setting.
	Validate() error
}

// FlagBinder is implemented by a Config that can be set from the agent's
// command line. Flags must be prefixed with the module ID
// ("--log-max-entries") so modules never collide; each flag is also read
// from the environment as SHOAL_<FLAG>.
type FlagBinder interface {
	BindFlags(fs FlagSet)
}

// FlagSet is the part of *flag.FlagSet a FlagBinder uses.
type FlagSet interface {
	IntVar(p *int, name string, value int, usage string)
	Int64Var(p *int64, name string, value int64, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	StringVar(p *string, name string, value string, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}

// Host is a module's handle on its node. All methods are safe for
// concurrent use.
type Host interface {
	// NodeName is this node's unique name in the cluster.
	NodeName() string
	// Logger is the module's logger (already carrying module=<id>).
	Logger() *slog.Logger
	// Registerer is this node's Prometheus registry. Metric names follow
	// shoal_<module>_<thing>_<unit>.
	Registerer() prometheus.Registerer
	// DataDir is a directory private to this module on this node, created
	// before Provision. It survives restarts.
	DataDir() string
	// Config is the module's configuration: exactly the value Info.NewConfig
	// returned (possibly filled from flags) or the one a caller supplied in
	// its place, already validated; nil if the module has no configuration.
	Config() Config
	// Raft is the shared, replicated log. Commands submitted through it
	// come back to the module's RaftHandler on every node.
	Raft() Raft
	// Gossip is the shared gossip channel, namespaced to the module.
	Gossip() Gossip
	// Cluster is who leads, which servers exist, and calls and streams to
	// the same module on other nodes, over the cluster port.
	Cluster() Cluster
}

// Cluster is a module's view of the cluster's servers and its way to reach
// the same module on them. Calls and streams travel over the cluster port,
// authenticated by it (mutual TLS with a cluster secret): a handler's from
// is the name the caller's certificate proves.
//
// Every failed call wraps ErrNotDelivered (the request never left this
// node: retrying cannot act twice) or ErrOutcomeUnknown (it was sent and
// no answer came), unless it is the error the peer's handler returned,
// which arrives as the same *httpjson.Error. Methods are safe for
// concurrent use; calls block until answered or ctx ends.
type Cluster interface {
	// Leader returns the current Raft leader; ok is false when none is
	// known (an election is under way, or this node is cut off).
	Leader() (leader Server, ok bool)
	// Servers lists the servers of the Raft configuration, voters and
	// non-voters, sorted by name.
	Servers() []Server
	// Call sends body to this module's PeerHandler on the node named node
	// and returns its answer.
	Call(ctx context.Context, node, method string, body []byte) ([]byte, error)
	// CallLeader is Call on the current leader (ErrNotDelivered when none
	// is known).
	CallLeader(ctx context.Context, method string, body []byte) ([]byte, error)
	// OpenStream opens a byte stream to this module's PeerStreamHandler on
	// the node named node. The caller owns the connection; ctx bounds the
	// opening only.
	OpenStream(ctx context.Context, node, name string) (net.Conn, error)
}

// Server is one server of the Raft configuration as a module sees it.
type Server struct {
	Name  string
	Voter bool
	// Leader is true for the current leader.
	Leader bool
	// Alive is what gossip says now (false for a dead, left or unknown
	// member).
	Alive bool
	// HTTPAddr and ClusterAddr are the addresses the member announces.
	HTTPAddr, ClusterAddr string
	// Modules are the modules the member runs.
	Modules []string
	// Local is true for this node.
	Local bool
}

// Errors of Cluster calls; errors.Is matches the error of a failed call.
var (
	ErrNotDelivered   = errors.New("the call was not delivered")
	ErrOutcomeUnknown = errors.New("the call was sent but no answer came")
)

// PeerHandler is implemented by a module that answers calls from the same
// module on other nodes (Cluster.Call). HandlePeer is called concurrently,
// one goroutine per call; ctx ends when the caller's connection breaks or
// the node stops. from is the calling node's name. A returned
// *httpjson.Error reaches the caller as is.
type PeerHandler interface {
	HandlePeer(ctx context.Context, from, method string, body []byte) ([]byte, error)
}

// PeerStreamHandler is implemented by a module that serves byte streams
// to the same module on other nodes (Cluster.OpenStream). The handler owns
// conn and must close it; it must return when ctx ends (the node stops).
type PeerStreamHandler interface {
	HandlePeerStream(ctx context.Context, from, name string, conn net.Conn)
}

// Applied is the outcome of a committed command.
type Applied struct {
	// Index is the Raft log index the command was committed at.
	Index uint64
	// Result is what the module's ApplyCommand returned on the leader.
	Result []byte
}

// Raft is a module's view of the shared Raft log.
type Raft interface {
	// Apply submits a command of the calling module and blocks until it is
	// committed by a majority and applied, then returns the leader's
	// ApplyCommand result. On a follower the command is forwarded to the
	// leader; Apply then also waits (bounded by ctx) until this node has
	// applied it, so a client that writes and then reads on the same node
	// sees its write. An error returned by ApplyCommand is returned as is
	// (an *httpjson.Error keeps its code across forwarding).
	// consensus.ErrNoLeader (503) means the command was not submitted;
	// consensus.ErrLeadershipLost means its outcome is unknown.
	Apply(ctx context.Context, op byte, payload []byte) (Applied, error)
	// ReadIndex blocks until this node has applied every command that was
	// committed before the call (a linearizable read barrier). It contacts
	// the leader, so it fails with ErrNoLeader when there is none.
	ReadIndex(ctx context.Context) error
	// ApplyOnLeader is Apply for work only the leader may start (expiring
	// leases, say): on a follower it fails at once with
	// consensus.ErrNotLeader instead of forwarding the command.
	ApplyOnLeader(ctx context.Context, op byte, payload []byte) (Applied, error)
	// AppliedIndex is the index of the last command this node has applied.
	AppliedIndex() uint64
	// IsLeader reports whether this node is the Raft leader right now.
	IsLeader() bool
}

// Gossip is a module's view of the shared gossip channel. Messages a module
// sends are delivered only to the same module on other nodes.
type Gossip interface {
	// Broadcast queues msg to be piggybacked to every member. If key is not
	// empty, a queued broadcast of this module with the same key is
	// replaced. It never blocks; msg must not be modified afterwards. A
	// message too large to piggyback on a gossip packet is refused with an
	// error (send large state with SendTo or the push/pull exchange).
	Broadcast(key string, msg []byte) error
	// Spread is Broadcast made fast: it also pushes msg at once, over UDP,
	// to fanout random members, and piggybacks it fewer times. A module
	// whose nodes Spread again each message that is new to them gets an
	// epidemic whose hops take a round trip instead of a gossip interval
	// (kv does, for writes). Without that relay, prefer Broadcast.
	Spread(key string, msg []byte, fanout int) error
	// SendTo sends msg reliably (over TCP) to one member by name.
	SendTo(ctx context.Context, node string, msg []byte) error
	// SendBestEffort sends msg to one member by name in one UDP packet,
	// at once and without a connection: it may be lost. For small
	// messages that a protocol repeats anyway (a periodic comparison),
	// where a TCP connection each would cost more than the message. msg
	// must fit a gossip packet (about 1,200 bytes).
	SendBestEffort(node string, msg []byte) error
	// Members lists the members currently alive or suspect, this node included.
	Members() []Member
}

// Member is one cluster member as a module sees it.
type Member struct {
	Name     string
	HTTPAddr string
	Modules  []string
	Local    bool
}

// Router is implemented by a module that serves HTTP. Routes is called once,
// after Provision, with the /v1 router; the module mounts its own
// sub-routes there (for example r.Route("/logs", ...)). Handlers run
// concurrently.
type Router interface {
	Routes(r chi.Router)
}

// PublicRouter is implemented by a module that serves static assets a
// browser loads before it has a token: a script, a page (objectsync's
// client.js and viewer). PublicRoutes is called once, after Provision, with
// the root router, outside the token check; paths are absolute
// ("/v1/objects/client.js", "/ui/objects"). Never serve data there.
type PublicRouter interface {
	PublicRoutes(r chi.Router)
}

// Command is one committed Raft command of a module.
type Command struct {
	// Index is the command's Raft log index, unique and increasing.
	Index uint64
	// Term is the Raft term of the leader that appended the command: a
	// module can tell commands of one leader from another's.
	Term uint64
	// Time is when the leader appended the command. It is the same on every
	// node, so a module uses it (never time.Now) for deterministic
	// timestamps and expiry decisions in its state machine. It comes from
	// the leader's clock, so it can go backwards after a leader change: a
	// module comparing times must not assume they only grow.
	Time time.Time
	// Op and Payload are what the module passed to Raft.Apply. Payload is
	// only valid during ApplyCommand: copy what you keep.
	Op      byte
	Payload []byte
}

// RaftHandler is implemented by a module that keeps state in the Raft FSM.
// ApplyCommand, Snapshot and Restore are called from the FSM goroutine, one
// at a time, never concurrently with each other; on every node they see the
// same commands in the same order, so they must be deterministic (no clocks,
// no randomness, no map-order dependence). They may be called as soon as
// Provision has returned, before Start: Raft restores its snapshot and
// replays its log while the node starts.
type RaftHandler interface {
	// Tag is the module's command tag (see tags.go).
	Tag() Tag
	// Ops lists the operations ApplyCommand accepts. The leader refuses a
	// command with any other op before it reaches the log: a node that
	// forwards a write cannot make the log hold what no module declared.
	Ops() []byte
	// ApplyCommand applies one committed command and returns a result for
	// the caller of Raft.Apply. A returned error is a deterministic outcome
	// of the command (for example "semaphore full"), not a failure of the
	// node: the state must be identical on every node either way. It must
	// not block on I/O beyond its own state.
	ApplyCommand(cmd Command) ([]byte, error)
	// Snapshot captures the module's state at this point of the log. It must
	// be quick (copy or freeze state); the slow part goes in Persist, which
	// runs on another goroutine while commands keep being applied.
	Snapshot() (Snapshot, error)
	// Restore replaces the module's entire state with what a Persist wrote.
	// An empty reader means "empty state" (the snapshot was taken before the
	// module was enabled).
	Restore(r io.Reader) error
}

// IndexedSnapshotter is implemented by a RaftHandler whose state refers to
// files it keeps beside the Raft log (the log module's segment files): it
// needs the Raft index a snapshot stands for, to name what the snapshot
// keeps and to convert state a snapshot of an older release holds. When a
// module implements it, the host calls SnapshotAt and RestoreAt instead
// of Snapshot and Restore, with the index of the last command applied
// when the snapshot was taken (RestoreAt: the snapshot's own index).
type IndexedSnapshotter interface {
	SnapshotAt(index uint64) (Snapshot, error)
	RestoreAt(r io.Reader, index uint64) error
}

// PortableSnapshotter is implemented by a RaftHandler whose snapshots refer
// to files on the node that took them (IndexedSnapshotter): for a backup,
// PortableSnapshot reads a section Persist wrote on this node and writes
// one that holds everything itself, which the module's RestoreAt accepts
// on any node of any cluster.
type PortableSnapshotter interface {
	PortableSnapshot(section io.Reader, w io.Writer) error
}

// BackupSection is implemented by a module whose data is not in Raft but
// belongs in a backup (kv, which gossip replicates): `shoal snapshot save`
// writes its section beside the Raft modules' state, and `snapshot
// restore` gives it back to the module on the node that restores, after
// the Raft state (docs/operations.md, "Backups").
type BackupSection interface {
	// SaveBackup writes the module's data as this node holds it.
	SaveBackup(ctx context.Context, w io.Writer) error
	// CheckBackup reads a section SaveBackup wrote and reports whether
	// RestoreBackup would accept it, changing nothing: a restore checks
	// every section before it replaces anything.
	CheckBackup(r io.Reader) error
	// RestoreBackup makes the module's data what the section holds, on
	// every node (a gossip module writes, and its writes spread).
	RestoreBackup(ctx context.Context, r io.Reader) error
}

// ErrNodeFailure is wrapped by an error ApplyCommand returns when this
// node failed to apply a command (a disk write failed), as opposed to a
// deterministic outcome of the command. The host stops this node's state
// machine for good (it reports not ready with the reason, and Raft goes on
// without it): going on would let this node's state differ from the
// others'. A restart recovers the module's files and replays the log.
var ErrNodeFailure = errors.New("this node failed to apply a command")

// Snapshot is a point-in-time copy of a module's Raft state.
type Snapshot interface {
	// Persist writes the state to w. It may run concurrently with
	// ApplyCommand, so it must only read what Snapshot captured.
	Persist(w io.Writer) error
	// Release is called when the snapshot is no longer needed.
	Release()
}

// GossipHandler is implemented by a module that receives gossip messages.
type GossipHandler interface {
	// Tag is the module's message tag (see tags.go).
	Tag() Tag
	// NotifyMsg is called with a message another node's module sent via
	// Broadcast or SendTo. It must not block; msg is only valid during the
	// call (copy what you keep).
	NotifyMsg(msg []byte)
}

// StateExchanger is implemented by a gossip module that takes part in
// memberlist's periodic push/pull state exchange (and the full exchange when
// a node joins).
type StateExchanger interface {
	GossipHandler
	// LocalState returns the state to send to a peer; join is true during a
	// join. It must not block for long.
	LocalState(join bool) []byte
	// MergeRemoteState merges a peer's LocalState. buf is only valid during
	// the call.
	MergeRemoteState(buf []byte, join bool)
}

// StatusReporter is implemented by a module that adds its own section to
// GET /v1/status, under its ID. The value must marshal to JSON.
type StatusReporter interface {
	Status() any
}

// ReadinessChecker is implemented by a module that can be not ready; a
// non-nil error makes /v1/health/ready fail with it as the reason.
type ReadinessChecker interface {
	Ready() error
}

// LeaderObserver is implemented by a module that does work only on the
// leader (expiring leases, say). LeadershipChanged is called from one
// goroutine, in order: with true after this node became leader and applied
// every entry of earlier terms, with false when it stops being leader. It
// must not block for long.
type LeaderObserver interface {
	LeadershipChanged(isLeader bool)
}
