package keyring

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Secret is a cluster secret: at least MinSecretLen random bytes.
type Secret []byte

// MinSecretLen is the shortest secret accepted (128 bits).
const MinSecretLen = 16

// ErrBadSecret is wrapped by every error parsing a secret returns.
var ErrBadSecret = errors.New("bad cluster secret")

// Generate returns a new secret of 32 random bytes in the form Parse reads
// (standard base64), as `shoal keygen` prints it.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a cluster secret: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Parse reads a secret written in base64 (standard or URL alphabet,
// padded or not). It never echoes the input in its errors.
func Parse(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 (make one with `shoal keygen`)", ErrBadSecret)
	}
	if len(b) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d (make one with `shoal keygen`)", ErrBadSecret, len(b), MinSecretLen)
	}
	return Secret(b), nil
}

// String is the secret in base64, the form Parse reads. It is what the
// keyring file stores; nothing else should print it.
func (s Secret) String() string { return base64.StdEncoding.EncodeToString(s) }

// ID names the secret without revealing it: the first 8 bytes of a hash
// of its gossip key, in hex. Lists and logs show IDs.
func (s Secret) ID() string {
	sum := sha256.Sum256(s.GossipKey())
	return hex.EncodeToString(sum[:8])
}

// derive returns n bytes for one use of the secret: HKDF-SHA256 with a
// label per use, so that no two uses share key material.
func (s Secret) derive(label string, n int) []byte {
	b, err := hkdf.Key(sha256.New, s, nil, label, n)
	if err != nil {
		panic(fmt.Sprintf("keyring: hkdf of %d bytes: %v", n, err)) // only for n beyond 255*32
	}
	return b
}

// GossipKey is the secret's AES-256 key for memberlist.
func (s Secret) GossipKey() []byte { return s.derive("shoal gossip key v1", 32) }

// caKey is the private key of the secret's certificate authority.
func (s Secret) caKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(s.derive("shoal cluster ca v1", ed25519.SeedSize))
}

// ca is the secret's CA: its certificate and private key. Ed25519
// signatures are deterministic and every field is fixed, so every node
// derives the same certificate.
type ca struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

func (s Secret) ca() (ca, error) {
	key := s.caKey()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"shoal"}, CommonName: "shoal cluster CA " + s.ID()},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return ca{}, fmt.Errorf("derive the cluster CA of %s: %w", s.ID(), err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ca{}, fmt.Errorf("derive the cluster CA of %s: %w", s.ID(), err)
	}
	return ca{cert: cert, key: key}, nil
}
