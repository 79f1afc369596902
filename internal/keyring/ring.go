package keyring

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/memberlist"
)

// Errors of the ring's operations.
var (
	ErrUnknownKey = errors.New("no such key in the keyring")
	ErrPrimary    = errors.New("the primary key cannot be removed: make another key primary first")
)

// KeyInfo describes an installed secret without revealing it.
type KeyInfo struct {
	ID      string `json:"id"`
	Primary bool   `json:"primary"`
}

// Ring is a node's installed cluster secrets, one of them primary: gossip
// is encrypted with the primary's key and decrypted with any installed
// one; the node's certificate is minted from the primary's CA, and peers
// whose certificates chain to any installed CA are trusted. Its methods
// are safe for concurrent use; TLS handshakes read the current state.
type Ring struct {
	tlsConfigs
	node   string
	path   string // the keyring file; "" keeps it in memory only
	logger *slog.Logger
	gossip *memberlist.Keyring

	mu      sync.RWMutex
	secrets []Secret // in the order they were installed
	primary Secret
	roots   *x509.CertPool
	cert    *tls.Certificate
}

// keyringFile is the ring on disk.
type keyringFile struct {
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"`
}

// Open returns the ring of node, kept in the file at path (none if path is
// ""). An existing file wins over seed, the --cluster-secret of this start
// (a rotation done since must survive restarts); without a file, seed
// starts the ring. With neither, Open returns nil: the node runs without
// cluster security.
func Open(path, node string, seed Secret, logger *slog.Logger) (*Ring, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var secrets []Secret
	var primary Secret
	if path != "" {
		f, err := readFile(path)
		switch {
		case err == nil:
			secrets, primary = f.secrets, f.primary
			if seed != nil && !containsSecret(secrets, seed) {
				logger.Warn("the cluster secret given at start is not in the keyring this data directory holds; the keyring is used (shoal keyring install adds a key)",
					"keyring", path, "given", seed.ID())
			}
		case errors.Is(err, os.ErrNotExist):
		default:
			return nil, err
		}
	}
	if primary == nil {
		if seed == nil {
			return nil, nil
		}
		secrets, primary = []Secret{seed}, seed
	}
	gossip, err := memberlist.NewKeyring(nil, primary.GossipKey())
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	r := &Ring{node: node, path: path, logger: logger, gossip: gossip}
	r.tlsConfigs = tlsConfigs{cert: r.currentCert, roots: r.currentRoots}
	for _, s := range secrets {
		if err := gossip.AddKey(s.GossipKey()); err != nil {
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.setLocked(secrets, primary); err != nil {
		return nil, err
	}
	if err := r.persistLocked(); err != nil {
		return nil, err
	}
	return r, nil
}

// setLocked makes secrets the ring's, with primary: trust roots from every
// CA, a certificate minted from the primary's. r.mu must be held.
func (r *Ring) setLocked(secrets []Secret, primary Secret) error {
	roots := x509.NewCertPool()
	var primaryCA ca
	for _, s := range secrets {
		c, err := s.ca()
		if err != nil {
			return err
		}
		roots.AddCert(c.cert)
		if s.equal(primary) {
			primaryCA = c
		}
	}
	if !primary.equal(r.primary) || r.cert == nil {
		cert, err := mintNodeCert(primaryCA, r.node)
		if err != nil {
			return err
		}
		r.cert = cert
	}
	r.secrets, r.primary, r.roots = secrets, primary, roots
	return nil
}

func (r *Ring) currentCert() *tls.Certificate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert
}

func (r *Ring) currentRoots() *x509.CertPool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.roots
}

// Gossip is memberlist's keyring, kept in step with the ring: pass it to
// memberlist.Config.Keyring.
func (r *Ring) Gossip() *memberlist.Keyring { return r.gossip }

// Keys lists the installed secrets by ID, the primary one marked.
func (r *Ring) Keys() []KeyInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]KeyInfo, len(r.secrets))
	for i, s := range r.secrets {
		out[i] = KeyInfo{ID: s.ID(), Primary: s.equal(r.primary)}
	}
	return out
}

// Install adds a secret; installing one already there does nothing.
func (r *Ring) Install(s Secret) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if containsSecret(r.secrets, s) {
		return nil
	}
	if err := r.setLocked(append(slices.Clone(r.secrets), s), r.primary); err != nil {
		return err
	}
	if err := r.gossip.AddKey(s.GossipKey()); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	r.logger.Info("cluster key installed", "key", s.ID())
	return r.persistLocked()
}

// Use makes an installed secret primary. ref is the secret or its ID.
func (r *Ring) Use(ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.findLocked(ref)
	if err != nil {
		return err
	}
	if s.equal(r.primary) {
		return nil
	}
	if err := r.setLocked(r.secrets, s); err != nil {
		return err
	}
	if err := r.gossip.UseKey(s.GossipKey()); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	r.logger.Info("cluster key made primary", "key", s.ID())
	return r.persistLocked()
}

// Remove removes an installed secret other than the primary. ref is the
// secret or its ID.
func (r *Ring) Remove(ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.findLocked(ref)
	if err != nil {
		return err
	}
	if s.equal(r.primary) {
		return ErrPrimary
	}
	rest := slices.DeleteFunc(slices.Clone(r.secrets), s.equal)
	if err := r.setLocked(rest, r.primary); err != nil {
		return err
	}
	if err := r.gossip.RemoveKey(s.GossipKey()); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	r.logger.Info("cluster key removed", "key", s.ID())
	return r.persistLocked()
}

// findLocked resolves ref, a secret or an ID, to an installed secret.
func (r *Ring) findLocked(ref string) (Secret, error) {
	if s, err := Parse(ref); err == nil && containsSecret(r.secrets, s) {
		return s, nil
	}
	for _, s := range r.secrets {
		if s.ID() == ref {
			return s, nil
		}
	}
	return nil, ErrUnknownKey
}

func (s Secret) equal(o Secret) bool { return string(s) == string(o) }

func containsSecret(list []Secret, s Secret) bool { return slices.ContainsFunc(list, s.equal) }

// persistLocked writes the ring to its file, atomically, readable by the
// owner only. r.mu must be held.
func (r *Ring) persistLocked() error {
	if r.path == "" {
		return nil
	}
	f := keyringFile{Primary: r.primary.String()}
	for _, s := range r.secrets {
		f.Keys = append(f.Keys, s.String())
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the keyring: %w", err)
	}
	if err := writeFileAtomic(r.path, b); err != nil {
		return fmt.Errorf("write the keyring %s: %w", r.path, err)
	}
	return nil
}

type loadedFile struct {
	secrets []Secret
	primary Secret
}

func readFile(path string) (loadedFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return loadedFile{}, err
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		return loadedFile{}, fmt.Errorf("read the keyring %s: %w", path, err)
	}
	var out loadedFile
	for i, k := range f.Keys {
		s, err := Parse(k)
		if err != nil {
			return loadedFile{}, fmt.Errorf("read the keyring %s: key %d: %w", path, i, err)
		}
		out.secrets = append(out.secrets, s)
	}
	p, err := Parse(f.Primary)
	if err != nil || !containsSecret(out.secrets, p) {
		return loadedFile{}, fmt.Errorf("read the keyring %s: the primary key is not one of its keys", path)
	}
	out.primary = p
	return out, nil
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".keyring-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// NodeKeys is one node's answer to a keyring operation run on every
// member: its keys afterwards, or why it failed.
type NodeKeys struct {
	Keys  []KeyInfo `json:"keys,omitempty"`
	Error string    `json:"error,omitempty"`
}

// ClusterKeys is the answer of every member to one keyring operation.
type ClusterKeys struct {
	Nodes  map[string]NodeKeys `json:"nodes"`
	Failed int                 `json:"failed"`
}

// FailedCount is how many members failed the operation.
func (c ClusterKeys) FailedCount() int { return c.Failed }
