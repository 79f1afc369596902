package consensus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Outage recovery: when a majority of the voters is lost for good, the
// survivors can never elect a leader again (Raft needs a majority of the
// configuration it holds). A recovery rewrites a surviving node's Raft
// configuration before raft starts, with hashicorp/raft's RecoverCluster,
// keeping every entry of the node's own log and snapshots:
//
//   - Config.Recover (shoal agent --recover): this node becomes the only
//     voter; fresh nodes then join it and autopilot grows the voter set.
//   - a peers file, Dir/peers.json (Consul's raft/peers.json, format 3):
//     the listed servers become the configuration. Every survivor gets the
//     same file. Once applied it is renamed peers.info, so it is applied
//     once.
//
// Either way the new configuration, the source and the node's last index
// are logged at warn level, and the applied configuration is kept in
// Dir/peers.info (the peers file format). A recovery keeps what this node
// holds and nothing more: entries the lost majority committed but never
// replicated here are gone, and entries this node held without knowing
// them committed become committed.

// The files of a recovery in a node's Raft directory.
const (
	// PeersFile asks for a recovery to the servers it lists at the next
	// start.
	PeersFile = "peers.json"
	// PeersInfo is the configuration the last recovery applied, in the
	// peers file format (a peers file is renamed to it once applied).
	PeersInfo = "peers.info"
)

// Errors of a refused recovery. New returns them wrapped; nothing about the
// node's state has changed then.
var (
	// ErrPeersFile: the peers file cannot be read or is not a valid
	// configuration.
	ErrPeersFile = errors.New("invalid raft peers file")
	// ErrRecoverNotListed: the configuration to recover to does not
	// contain this node.
	ErrRecoverNotListed = errors.New("the recovered configuration does not contain this node")
	// ErrRecoverNoState: the node has no Raft state to recover from (a
	// wiped or wrong data directory); it should join instead.
	ErrRecoverNoState = errors.New("this node has no raft state to recover from")
	// ErrRecoveredBefore: Config.Recover is set but this data directory
	// was already recovered (Dir/peers.info exists). Recovering again
	// after other nodes joined would split the cluster, so a --recover
	// left in a service definition must not apply at every restart.
	ErrRecoveredBefore = errors.New("this data directory was already recovered")
	// ErrRecoverAmbiguous: Config.Recover is set and a peers file exists.
	ErrRecoverAmbiguous = errors.New("both --recover and a raft peers file ask for a recovery")
)

// Peer is one server of a peers file, as Consul's raft/peers.json writes
// it: [{"id":"n1","address":"10.0.0.1:7481","non_voter":false}].
type Peer struct {
	// ID is the node name (--node-name).
	ID string `json:"id"`
	// Address is the node's cluster (Raft) address, host:port.
	Address string `json:"address"`
	// NonVoter makes the server a non-voter.
	NonVoter bool `json:"non_voter"`
}

// maxPeers bounds a peers file: the voter set is at most 7, and a
// recovery lists survivors only.
const maxPeers = 64

// ReadPeersFile reads a peers file and returns the configuration it
// describes. It refuses anything but a JSON array of peers with unknown
// fields, trailing data, empty or duplicate IDs or addresses, invalid
// addresses or no voter (ErrPeersFile).
func ReadPeersFile(path string) (raft.Configuration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("%w %s: %w", ErrPeersFile, path, err)
	}
	c, err := ParsePeers(b)
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParsePeers decodes and checks a peers file's contents (see
// ReadPeersFile).
func ParsePeers(b []byte) (raft.Configuration, error) {
	bad := func(format string, args ...any) (raft.Configuration, error) {
		return raft.Configuration{}, fmt.Errorf("%w: %s", ErrPeersFile, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var peers []*Peer
	if err := dec.Decode(&peers); err != nil {
		return bad("want a JSON array of {\"id\",\"address\",\"non_voter\"}: %s", err.Error())
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return bad("unexpected data after the array")
	}
	if len(peers) == 0 {
		return bad("no servers")
	}
	if len(peers) > maxPeers {
		return bad("%d servers, at most %d", len(peers), maxPeers)
	}
	var c raft.Configuration
	ids, addrs := map[string]bool{}, map[string]bool{}
	voters := 0
	for i, p := range peers {
		switch {
		case p == nil:
			return bad("server %d is null", i)
		case p.ID == "" || len(p.ID) > 64:
			return bad("server %d: the id must be a node name of 1 to 64 bytes", i)
		case ids[p.ID]:
			return bad("server %q is listed twice", p.ID)
		case addrs[p.Address]:
			return bad("address %q is listed twice", p.Address)
		}
		host, port, err := net.SplitHostPort(p.Address)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n <= 0 || n > 65535 {
			return bad("server %q: address %q is not host:port", p.ID, p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		s := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)}
		if p.NonVoter {
			s.Suffrage = raft.Nonvoter
		} else {
			voters++
		}
		c.Servers = append(c.Servers, s)
	}
	if voters == 0 {
		return bad("no voter")
	}
	return c, nil
}

// recoverConfiguration applies a recovery if one is asked for, before
// raft starts on the stores: Config.Recover or a peers file in Dir. It is
// called from New with the node's stores, transport and FSM; it replays
// the log into the FSM (which raft restores again from the snapshot this
// writes). A refusal changes nothing.
func (n *Node) recoverConfiguration(rc *raft.Config, logs raft.LogStore, snaps raft.SnapshotStore) error {
	peersPath := filepath.Join(n.cfg.Dir, PeersFile)
	infoPath := filepath.Join(n.cfg.Dir, PeersInfo)
	hasPeers, err := exists(peersPath)
	if err != nil {
		return err
	}
	if !hasPeers && !n.cfg.Recover {
		return nil
	}
	var conf raft.Configuration
	source := "--recover"
	switch {
	case hasPeers && n.cfg.Recover:
		return fmt.Errorf("%w (%s): remove one of them", ErrRecoverAmbiguous, peersPath)
	case hasPeers:
		source = peersPath
		if conf, err = ReadPeersFile(peersPath); err != nil {
			return err
		}
	default:
		if fi, err := os.Stat(infoPath); err == nil {
			return fmt.Errorf("%w at %s (%s): start without --recover; to recover it again, remove that file first",
				ErrRecoveredBefore, fi.ModTime().UTC().Format(time.RFC3339), infoPath)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("recover: %w", err)
		}
		conf.Servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.advertise)}}
	}
	var self *raft.Server
	for i := range conf.Servers {
		if conf.Servers[i].ID == raft.ServerID(n.cfg.NodeID) {
			self = &conf.Servers[i]
		}
	}
	if self == nil {
		return fmt.Errorf("recovery (%s): %w (%q)", source, ErrRecoverNotListed, n.cfg.NodeID)
	}
	if !n.hadState {
		return fmt.Errorf("recovery (%s): %w in %s: start it without recovery to join a cluster", source, ErrRecoverNoState, n.cfg.Dir)
	}
	if string(self.Address) != n.advertise {
		n.cfg.Logger.Warn("recovery: this node's address in the new configuration is not the one it advertises; other nodes dial the address gossip announces",
			"listed", self.Address, "advertised", n.advertise)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("recover: read the last log index: %w", err)
	}
	var snapIndex uint64
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		snapIndex = list[0].Index
	}
	n.cfg.Logger.Warn("RECOVERING THE RAFT CONFIGURATION: the servers below replace the configuration this node holds, keeping its data; every entry in its log becomes committed, entries it never received are lost",
		"source", source, "servers", describeServers(conf), "last_log_index", last, "last_snapshot_index", snapIndex)
	if err := raft.RecoverCluster(rc, n.fsm, logs, n.stores.Stable, snaps, n.transport, conf); err != nil {
		return fmt.Errorf("recovery (%s): %w", source, err)
	}
	if err := recordRecovery(n.cfg.Dir, hasPeers, conf); err != nil {
		return err
	}
	n.cfg.Logger.Warn("recovered the raft configuration: start the other servers of the new configuration, or let new nodes join this one",
		"source", source, "servers", describeServers(conf), "applied_configuration", infoPath)
	return nil
}

// recordRecovery keeps the applied configuration in dir/peers.info: a
// peers file is renamed to it (applied once, as Consul does), a --recover
// writes it.
func recordRecovery(dir string, fromFile bool, conf raft.Configuration) error {
	info := filepath.Join(dir, PeersInfo)
	if fromFile {
		if err := os.Rename(filepath.Join(dir, PeersFile), info); err != nil {
			return fmt.Errorf("recovered, but could not rename the peers file (remove it before the next start): %w", err)
		}
		return syncDir(dir)
	}
	b, err := json.MarshalIndent(peersOf(conf), "", "  ")
	if err != nil {
		return fmt.Errorf("record the recovery: %w", err)
	}
	tmp := info + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record the recovery: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, info)
	}
	if err != nil {
		return fmt.Errorf("record the recovery in %s: %w", info, err)
	}
	return syncDir(dir)
}

// peersOf is c in the peers file format.
func peersOf(c raft.Configuration) []Peer {
	peers := make([]Peer, len(c.Servers))
	for i, s := range c.Servers {
		peers[i] = Peer{ID: string(s.ID), Address: string(s.Address), NonVoter: s.Suffrage != raft.Voter}
	}
	return peers
}

// describeServers lists a configuration for the log: id@address and
// suffrage.
func describeServers(c raft.Configuration) []string {
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = fmt.Sprintf("%s@%s (%s)", s.ID, s.Address, s.Suffrage)
	}
	return out
}
