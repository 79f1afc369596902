package agent

import (
	"fmt"
	"net"
	"path/filepath"

	"shoal/internal/clusterport"
	"shoal/internal/keyring"
)

// SecurityStatus says how this node's node-to-node traffic is protected;
// /v1/status shows it.
type SecurityStatus struct {
	// ClusterPort is "mutual_tls" (certificates from the cluster secret),
	// "mutual_tls_pki" (the operator's certificates) or "plaintext".
	ClusterPort string `json:"cluster_port"`
	// Gossip is "encrypted" or "plaintext".
	Gossip string `json:"gossip"`
	// Keys lists the installed cluster secrets by ID.
	Keys []keyring.KeyInfo `json:"keys,omitempty"`
	// Warning is set when a node reachable from other hosts runs without
	// protection.
	Warning string `json:"warning,omitempty"`
}

// keyringFile is where a node keeps its cluster secrets.
const keyringFile = "keyring.json"

// openSecurity opens the node's keyring (seeded by --cluster-secret) and
// chooses what protects the cluster port: the operator's PKI if given,
// else certificates derived from the keyring, else nothing.
func (a *Agent) openSecurity() (clusterport.Security, error) {
	var seed keyring.Secret
	if a.cfg.ClusterSecret != "" {
		s, err := keyring.Parse(a.cfg.ClusterSecret)
		if err != nil {
			return nil, fmt.Errorf("cluster secret: %w", err)
		}
		seed = s
	}
	ring, err := keyring.Open(filepath.Join(a.cfg.DataDir, keyringFile), a.cfg.NodeName, seed, a.logger.With("component", "keyring"))
	if err != nil {
		return nil, err
	}
	a.ring = ring
	st := SecurityStatus{ClusterPort: "plaintext", Gossip: "plaintext"}
	var sec clusterport.Security
	if ring != nil {
		sec = ring
		st.ClusterPort, st.Gossip = "mutual_tls", "encrypted"
	}
	if a.cfg.ClusterTLSCert != "" {
		pki, err := keyring.LoadPKI(a.cfg.ClusterTLSCert, a.cfg.ClusterTLSKey, a.cfg.ClusterTLSCA, a.cfg.NodeName)
		if err != nil {
			return nil, err
		}
		sec = pki
		st.ClusterPort = "mutual_tls_pki"
	}
	if !a.cfg.Local && (st.ClusterPort == "plaintext" || st.Gossip == "plaintext") && !allLoopback(a.cfg.RaftAddr, a.cfg.GossipAddr) {
		st.Warning = "node-to-node traffic is not protected: any process that reaches the cluster or gossip port can join, read and write everything; set --cluster-secret (shoal keygen makes one)"
		if st.ClusterPort != "plaintext" {
			st.Warning = "gossip is not encrypted: set --cluster-secret as well as the cluster TLS files"
		}
		a.logger.Warn("INSECURE: " + st.Warning)
	}
	a.security = st
	return sec, nil
}

// Security reports how this node's node-to-node traffic is protected.
func (a *Agent) Security() SecurityStatus {
	st := a.security
	if a.ring != nil {
		st.Keys = a.ring.Keys()
	}
	return st
}

// allLoopback reports whether every address binds to a loopback host, so
// that no other machine can reach it.
func allLoopback(addrs ...string) bool {
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return false
		}
		if host == "localhost" {
			continue
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}
