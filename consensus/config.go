package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Node.
type Config struct {
	// NodeID is the node's Raft server ID: its unique node name.
	NodeID string
	// Dir holds the log and stable store (wal/, or raft.db for bolt; see
	// LogStore) and snapshots/.
	Dir string
	// LogStore is the store of the Raft log and of raft's stable keys
	// (term, vote): LogStoreWAL or LogStoreBolt. A Dir that holds a bolt
	// store is migrated to wal once when LogStore is wal (see OpenStores);
	// a Dir that holds a wal is refused when it is bolt.
	LogStore string
	// WALSegmentSize is the size of raft-wal's segment files; 0 means
	// raft-wal's default (64 MiB). Unused with bolt.
	WALSegmentSize int
	// AdvertiseAddr is the host:port other servers dial (a host name
	// stays a name, resolved by whoever dials); empty means the cluster
	// port's bound address, which must then not be unspecified. A port of
	// 0, or none, means the bound port.
	AdvertiseAddr string
	// Recover makes this node the only voter of its cluster before raft
	// starts, keeping its log and snapshots: outage recovery after a
	// majority of the voters was lost for good (see recover.go; a peers
	// file in Dir does the same for a list of survivors). It is refused on
	// a Dir without Raft state or one recovered before.
	Recover bool

	// SnapshotThreshold is how many entries since the last snapshot trigger
	// a new one.
	SnapshotThreshold uint64
	// SnapshotBytes, if not 0, also triggers a snapshot once this many
	// bytes of commands were stored in the Raft log since the last one
	// this node took by bytes (snapshotbytes.go says why).
	SnapshotBytes uint64
	// SnapshotInterval is how often raft checks the threshold.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries are kept after a snapshot, so a
	// slightly slow follower catches up from the log, not a snapshot.
	TrailingLogs uint64

	Timing Timing

	// ApplyTimeout bounds how long a write waits for a leader and for
	// commit before it fails with ErrNoLeader or ErrTimeout.
	ApplyTimeout time.Duration

	// DeadNodeReap is how long a server must be dead in gossip before the
	// leader removes it from the Raft configuration (if quorum stays safe).
	DeadNodeReap time.Duration
	// Stabilization is how long a caught-up non-voter must stay caught up
	// before it is promoted to voter.
	Stabilization time.Duration
	// ReconcileInterval is how often the leader's autopilot reconciles the
	// Raft configuration with gossip membership.
	ReconcileInterval time.Duration
	// MaxVoters is the size of the voter set (1, 3, 5 or 7): autopilot
	// keeps min(MaxVoters, servers) voters, odd; other servers are
	// non-voters (read replicas).
	MaxVoters int
	// VoterGrace is how long a voter may be down before autopilot
	// replaces it with a caught-up non-voter (a restart is not a loss).
	VoterGrace time.Duration

	// OnElected, if set, is called with the term each time this node wins
	// an election (tests record it to check that no term has two leaders).
	// It runs on raft's goroutine and must not block.
	OnElected func(term uint64)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Timing holds Raft's timeouts.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// CommitNoticeHold, when set, is how long an idle leader always holds
	// a commit notice back when no follower waits for one; 0 (the
	// default) holds it for as long as the next write can be expected
	// (commitnotice.go, noticeHold). For tests.
	CommitNoticeHold time.Duration
}

// DefaultTiming is for real networks: raft's defaults, but for the commit
// timeout. Followers learn the last commit from the leader's commit notice
// (commitnotice.go), so the replication loops' empty AppendEntries are only
// a backstop: once every 1–2 s per follower instead of raft's 13 a second.
func DefaultTiming() Timing {
	return Timing{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      time.Second,
	}
}

// LocalTiming is for several nodes on one machine, in tests and --dev.
// Elections use raft's default timeouts: shorter ones made leaders step down
// on a loaded 2-core machine running several clusters under -race, where a
// heartbeat goroutine can wait hundreds of milliseconds for a CPU. For the
// same reason the leader's lease is as long as the heartbeat timeout (raft's
// maximum) rather than half of it: a leader that heard from no follower for
// 500 ms while every process on the machine waited for a CPU stepped down
// although nothing had failed, and the writes in flight ended with an
// unknown outcome. The commit timeout is short, as before commit notices:
// besides telling followers the commit index, every AppendEntries renews
// the leader's contact with a follower, and on such a machine the 100–200 ms
// heartbeats alone, when their goroutine waits for a CPU, let leases run
// out. With it the leader sends no commit notices (commitnotice.go); a
// test with a long commit timeout shows them at work.
func LocalTiming() Timing {
	t := DefaultTiming()
	t.LeaderLeaseTimeout = t.HeartbeatTimeout
	t.CommitTimeout = 5 * time.Millisecond
	return t
}

// MaxRaftMultiplier bounds Timing.Scaled's multiplier, as Consul bounds
// its raft_multiplier: beyond 10, a lost leader takes tens of seconds to
// replace.
const MaxRaftMultiplier = 10

// Scaled returns t with the heartbeat, election and lease timeouts
// multiplied by m (1 to MaxRaftMultiplier; the commit timeout is kept).
// The leader sends each server a heartbeat every HeartbeatTimeout/10:
// with S servers it sends 10(S-1)/m a second, and a follower starts an
// election only after m seconds without one. A larger m trades slower
// failover for fewer heartbeats and fewer spurious elections on a loaded
// machine (docs/scaling.md, "Raft timing").
func (t Timing) Scaled(m int) Timing {
	if m <= 1 {
		return t
	}
	d := time.Duration(m)
	t.HeartbeatTimeout *= d
	t.ElectionTimeout *= d
	t.LeaderLeaseTimeout *= d
	return t
}

// DefaultSnapshotBytes bounds the Raft log a restart replays to 64 MiB of
// commands (see snapshotbytes.go).
const DefaultSnapshotBytes = 64 << 20

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		LogStore: LogStoreWAL,
		// A snapshot costs what the modules hold beside their files (the
		// log module links its segment files), so it can be taken often;
		// the Raft log it lets go of is a second copy of every entry.
		SnapshotThreshold: 2048,
		SnapshotBytes:     DefaultSnapshotBytes,
		SnapshotInterval:  30 * time.Second,
		TrailingLogs:      2048,
		Timing:            DefaultTiming(),
		ApplyTimeout:      10 * time.Second,
		DeadNodeReap:      time.Hour,
		Stabilization:     10 * time.Second,
		ReconcileInterval: time.Second,
		MaxVoters:         5,
		VoterGrace:        30 * time.Second,
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("node id is required")
	case c.Dir == "":
		return errors.New("raft directory is required")
	case c.WALSegmentSize < 0:
		return errors.New("wal segment size must not be negative")
	case c.SnapshotThreshold == 0:
		return errors.New("snapshot threshold must be at least 1")
	case c.ApplyTimeout <= 0:
		return errors.New("apply timeout must be positive")
	case c.DeadNodeReap <= 0:
		return errors.New("dead node reap must be positive")
	case c.ReconcileInterval <= 0:
		return errors.New("reconcile interval must be positive")
	case c.VoterGrace <= 0:
		return errors.New("voter grace must be positive")
	case c.Timing.HeartbeatTimeout <= 0 || c.Timing.ElectionTimeout <= 0 || c.Timing.LeaderLeaseTimeout <= 0:
		return errors.New("raft timeouts must be positive")
	}
	if err := ValidateLogStore(c.LogStore); err != nil {
		return err
	}
	if err := ValidVoters(c.MaxVoters); err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("raft advertise address %q: %w", c.AdvertiseAddr, err)
		}
	}
	return nil
}
