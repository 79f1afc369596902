package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// testCA is a throwaway CA that issues certificates for the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue writes a certificate with serial and its key as <name>.pem and
// <name>-key.pem; a server certificate is for 127.0.0.1.
func (ca *testCA) issue(t *testing.T, name string, serial int64, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written to temporary names and renamed, as cert-manager does, so a
	// handshake never reads half a pair.
	c := ca.write(t, name+".pem.tmp", "CERTIFICATE", der)
	k := ca.write(t, name+"-key.pem.tmp", "EC PRIVATE KEY", kder)
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem")
	if err := os.Rename(k, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c, certFile); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// servedSerial returns the serial of the certificate the node presents.
func servedSerial(addr string, roots *x509.CertPool) (int64, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestAPI_TLS: with --tls-cert the API serves HTTPS only, HTTP/2 by ALPN;
// a renewed certificate is served without a restart; with --tls-client-ca
// a client without a certificate from that CA is refused.
func TestAPI_TLS(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, "server", 10, true)
	c := testcluster.New(t, 1, testcluster.WithModules("log"), testcluster.WithConfig(func(i int, cfg *agent.Config) {
		cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	}))
	n := c.Leader()
	addr := n.Addresses().HTTP
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tcfg, err := client.LoadTLS(filepath.Join(ca.dir, "ca.pem"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New("https://"+addr, client.WithTLS(tcfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Publish(ctx, "orders", "o-1", []byte(`1`)); err != nil {
		t.Fatalf("a publish over https: %v", err)
	}
	// HTTP/2 by ALPN.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true}}
	resp, err := hc.Get("https://" + addr + "/v1/health/live")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("https spoke %s, want HTTP/2", resp.Proto)
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + addr + "/v1/health/live"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain http answered 200 on a TLS node")
		}
	}
	// Without the CA, the client does not trust the node.
	if plain, _ := client.New("https://" + addr); plain != nil {
		if _, err := plain.Publish(ctx, "orders", "o-2", []byte(`2`)); err == nil {
			t.Fatalf("a client that does not trust the CA published")
		}
	}

	// A renewed certificate is served without a restart.
	ca.issue(t, "server", 11, true)
	testcluster.Eventually(t, 10*time.Second, func() error {
		serial, err := servedSerial(addr, tcfg.RootCAs)
		if err != nil {
			return err
		}
		if serial != 11 {
			return fmt.Errorf("serving certificate %d, want the renewed 11", serial)
		}
		return nil
	})
}

func TestAPI_TLSClientCertificates(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, "server", 10, true)
	c := testcluster.New(t, 1, testcluster.WithModules("log"), testcluster.WithConfig(func(i int, cfg *agent.Config) {
		cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = certFile, keyFile, filepath.Join(ca.dir, "ca.pem")
	}))
	addr := c.Leader().Addresses().HTTP
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	caOnly, err := client.LoadTLS(filepath.Join(ca.dir, "ca.pem"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	anon, _ := client.New("https://"+addr, client.WithTLS(caOnly))
	if _, err := anon.Publish(ctx, "orders", "o-1", []byte(`1`)); err == nil {
		t.Fatalf("a client without a certificate published")
	}
	ccert, ckey := ca.issue(t, "ops", 20, false)
	withCert, err := client.LoadTLS(filepath.Join(ca.dir, "ca.pem"), ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := client.New("https://"+addr, client.WithTLS(withCert))
	if _, err := cl.Publish(ctx, "orders", "o-1", []byte(`1`)); err != nil {
		t.Fatalf("a client with a certificate: %v", err)
	}
}
