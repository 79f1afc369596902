package keyring

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// PKI is the cluster port's TLS from an operator's own certificates: this
// node's certificate and key, and the CA that issued every node's. A
// node's certificate names it with a shoal://node/<name> URI or, failing
// that, its common name. It is safe for concurrent use.
type PKI struct {
	tlsConfigs
}

// LoadPKI reads the PEM files of node's certificate (the chain up to its
// CA, leaf first), its key, and the CA bundle peers must chain to. The
// certificate must be issued to node.
func LoadPKI(certFile, keyFile, caFile, node string) (*PKI, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the cluster TLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load the cluster TLS certificate: %w", err)
	}
	cert.Leaf = leaf
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("load the cluster TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("load the cluster TLS CA: no certificate in " + caFile)
	}
	name, err := verifyPeer(append([]*x509.Certificate{leaf}, parseRest(cert.Certificate[1:])...), roots)
	if err != nil {
		return nil, fmt.Errorf("this node's own cluster TLS certificate: %w", err)
	}
	if name != node {
		return nil, fmt.Errorf("the cluster TLS certificate is issued to %q, but this node is %q", name, node)
	}
	return &PKI{tlsConfigs{
		cert:  func() *tls.Certificate { return &cert },
		roots: func() *x509.CertPool { return roots },
	}}, nil
}

func parseRest(ders [][]byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range ders {
		if c, err := x509.ParseCertificate(d); err == nil {
			out = append(out, c)
		}
	}
	return out
}
