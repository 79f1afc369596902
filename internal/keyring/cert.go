package keyring

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// A node's certificate names it with a URI, shoal://node/<name>: node
// names need not be DNS names, and a URI cannot be mistaken for a host
// name by anything that checks those.
const nodeURIPrefix = "shoal://node/"

// nodeCertLifetime: a node mints its certificate at start and whenever its
// primary secret changes, so the lifetime only has to outlast an uptime.
const nodeCertLifetime = 10 * 365 * 24 * time.Hour

// mintNodeCert makes node's certificate, signed by the CA, with a fresh
// key pair that never leaves the process.
func mintNodeCert(c ca, node string) (*tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate a serial number: %w", err)
	}
	u, err := url.Parse(nodeURIPrefix + url.PathEscape(node))
	if err != nil {
		return nil, fmt.Errorf("node name %q in a certificate: %w", node, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"shoal"}, CommonName: node},
		URIs:         []*url.URL{u},
		NotBefore:    now.Add(-time.Hour), // clocks of peers may lag
		NotAfter:     now.Add(nodeCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("sign the certificate of %s: %w", node, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign the certificate of %s: %w", node, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: priv, Leaf: leaf}, nil
}

// NodeName returns the node name a certificate was issued to: its
// shoal://node/ URI, else its common name.
func NodeName(cert *x509.Certificate) (string, error) {
	for _, u := range cert.URIs {
		s := u.String()
		if !strings.HasPrefix(s, nodeURIPrefix) {
			continue
		}
		name, err := url.PathUnescape(strings.TrimPrefix(s, nodeURIPrefix))
		if err != nil || name == "" {
			return "", fmt.Errorf("certificate URI %q names no node", s)
		}
		return name, nil
	}
	if cert.Subject.CommonName != "" {
		return cert.Subject.CommonName, nil
	}
	return "", errors.New("the certificate names no node (no shoal://node/ URI, no common name)")
}

// ErrUntrusted is wrapped by every error verifying a peer's certificate
// returns.
var ErrUntrusted = errors.New("untrusted peer certificate")

// verifyPeer checks that a peer's certificate chain leads to one of roots
// and returns the node name it was issued to.
func verifyPeer(chain []*x509.Certificate, roots *x509.CertPool) (string, error) {
	if len(chain) == 0 {
		return "", fmt.Errorf("%w: the peer sent no certificate", ErrUntrusted)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "", fmt.Errorf("%w: %w (does the peer hold this cluster's secret?)", ErrUntrusted, err)
	}
	name, err := NodeName(chain[0])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return name, nil
}

// tlsConfigs builds the cluster port's TLS configurations around a source
// of the current certificate and trust roots, which may change at any time
// (rotation): every handshake reads them afresh.
type tlsConfigs struct {
	cert  func() *tls.Certificate
	roots func() *x509.CertPool
}

// ServerTLS is the configuration of connections this node accepts: TLS
// 1.3, a client certificate required and verified.
func (t tlsConfigs) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cert(), nil
		},
		// The chain is verified below, against roots read at handshake
		// time; tls.RequireAndVerifyClientCert would pin ClientCAs.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verifyPeer(cs.PeerCertificates, t.roots())
			return err
		},
	}
}

// ClientTLS is the configuration of a connection this node opens to the
// node named to: the server's certificate must chain to a trusted CA and
// be issued to that name.
func (t tlsConfigs) ClientTLS(to string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: "shoal-cluster", // not a host name check: VerifyConnection checks the node
		// Go's built-in verification checks host names; a node's identity
		// is its node name, checked in VerifyConnection against roots read
		// at handshake time.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.cert(), nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			name, err := verifyPeer(cs.PeerCertificates, t.roots())
			if err != nil {
				return err
			}
			if name != to {
				return fmt.Errorf("%w: the peer is %s, not %s", ErrUntrusted, name, to)
			}
			return nil
		},
	}
}

// PeerName returns the verified node name of a completed handshake.
func (t tlsConfigs) PeerName(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("%w: the peer sent no certificate", ErrUntrusted)
	}
	return NodeName(cs.PeerCertificates[0])
}
