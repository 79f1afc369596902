// Package keyring holds a node's cluster secrets and turns them into what
// protects node-to-node traffic: the gossip encryption keys (memberlist's
// keyring, AES-256-GCM) and mutual TLS on the cluster port.
//
// A cluster secret is all an operator gives (--cluster-secret, or `shoal
// keygen` to make one). From it, every node derives the same things with
// HKDF-SHA256, each under its own label:
//
//   - a 32-byte gossip key;
//   - an Ed25519 certificate authority, whose private key every holder of
//     the secret can compute: each node mints its own certificate (its
//     node name in it, a fresh key pair) at start, and trusts a peer whose
//     certificate chains to the CA of a secret it holds.
//
// So holding the secret is being a member: a process without it cannot
// decrypt or forge gossip and cannot complete a TLS handshake with any
// node, and the node name a peer claims is the one its certificate proves.
// Operators with their own PKI give a certificate, key and CA instead
// (PKI); the gossip key still comes from a secret.
//
// Rotation works as with Serf's and Consul's keyrings: install a new
// secret on every node (each then accepts both), make it primary
// everywhere (nodes encrypt and mint with it), then remove the old one.
// The ring is persisted in the node's data directory, so a restart keeps
// what was installed; the --cluster-secret flag only seeds a new ring.
//
// What this package must never do: log, print or return a secret (keys are
// named by their ID, a hash prefix); persist a secret with permissions
// beyond the owner's; accept a peer certificate that does not chain to an
// installed CA; remove the primary secret.
package keyring
