package keyring

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func secret(t *testing.T) Secret {
	t.Helper()
	s, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ring(t *testing.T, node string, s Secret) *Ring {
	t.Helper()
	r, err := Open("", node, s, nil)
	if err != nil || r == nil {
		t.Fatalf("open ring: %v", err)
	}
	return r
}

type security interface {
	ServerTLS() *tls.Config
	ClientTLS(to string) *tls.Config
	PeerName(tls.ConnectionState) (string, error)
}

// handshake runs a TLS handshake from client (meaning to reach to) to
// server over a pipe and returns the name the server saw and each side's
// error.
func handshake(client, server security, to string) (seen string, clientErr, serverErr error) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	srv := tls.Server(b, server.ServerTLS())
	done := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err != nil {
			b.Close() // unblocks the client
		}
		done <- err
	}()
	cl := tls.Client(a, client.ClientTLS(to))
	clientErr = cl.Handshake()
	if clientErr != nil {
		a.Close()
	}
	serverErr = <-done
	if serverErr == nil {
		seen, serverErr = server.PeerName(srv.ConnectionState())
	}
	return seen, clientErr, serverErr
}

func TestSecret_ParseAndID(t *testing.T) {
	s := secret(t)
	if len(s) != 32 {
		t.Fatalf("generated %d bytes, want 32", len(s))
	}
	again, err := Parse(s.String())
	if err != nil || !again.equal(s) {
		t.Fatalf("round trip: %v", err)
	}
	if strings.Contains(s.ID(), s.String()) || len(s.ID()) != 16 {
		t.Fatalf("id %q", s.ID())
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ=" /* "short" */} {
		_, err := Parse(bad)
		if !errors.Is(err, ErrBadSecret) || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
	// The gossip key and the CA are derived, the same on every node.
	if !bytes.Equal(s.GossipKey(), again.GossipKey()) || bytes.Equal(s.GossipKey(), s) {
		t.Fatal("gossip key not derived deterministically from the secret")
	}
	c1, _ := s.ca()
	c2, _ := again.ca()
	if !bytes.Equal(c1.cert.Raw, c2.cert.Raw) {
		t.Fatal("two nodes derive different CA certificates from one secret")
	}
}

func TestRing_MutualTLSNamesThePeer(t *testing.T) {
	s := secret(t)
	a, b := ring(t, "node-a", s), ring(t, "node b/1", s) // names need not be host names
	seen, cErr, sErr := handshake(a, b, "node b/1")
	if cErr != nil || sErr != nil {
		t.Fatalf("handshake: client %v, server %v", cErr, sErr)
	}
	if seen != "node-a" {
		t.Fatalf("the server saw %q, want node-a", seen)
	}
	// The client meant to reach another node: refused, as a stale address
	// must never reach the wrong node.
	if _, cErr, _ := handshake(a, b, "node-c"); !errors.Is(cErr, ErrUntrusted) {
		t.Fatalf("wrong node: client got %v, want ErrUntrusted", cErr)
	}
}

func TestRing_WrongSecretIsRefusedBothWays(t *testing.T) {
	a, intruder := ring(t, "a", secret(t)), ring(t, "b", secret(t))
	_, cErr, sErr := handshake(intruder, a, "a")
	if cErr == nil || !errors.Is(sErr, ErrUntrusted) && !errors.Is(cErr, ErrUntrusted) {
		t.Fatalf("intruder dials: client %v, server %v", cErr, sErr)
	}
	_, cErr, _ = handshake(a, intruder, "b")
	if !errors.Is(cErr, ErrUntrusted) {
		t.Fatalf("dialing an intruder: client %v, want ErrUntrusted", cErr)
	}
}

// TestRing_Rotation walks the rotation an operator does with shoal
// keyring: install everywhere, use everywhere, remove everywhere; every
// pair of nodes can talk at every step.
func TestRing_Rotation(t *testing.T) {
	old, next := secret(t), secret(t)
	a, b := ring(t, "a", old), ring(t, "b", old)
	talk := func(step string) {
		t.Helper()
		for _, p := range [][2]*Ring{{a, b}, {b, a}} {
			if _, cErr, sErr := handshake(p[0], p[1], p[1].node); cErr != nil || sErr != nil {
				t.Fatalf("%s: %s to %s: client %v, server %v", step, p[0].node, p[1].node, cErr, sErr)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Install(next))
	talk("installed on a")
	must(b.Install(next))
	must(a.Use(next.ID())) // by ID
	talk("a uses the new key")
	must(b.Use(next.String())) // by the secret itself
	talk("both use the new key")
	if err := a.Remove(next.ID()); !errors.Is(err, ErrPrimary) {
		t.Fatalf("remove the primary: %v", err)
	}
	must(a.Remove(old.ID()))
	talk("a removed the old key")
	must(b.Remove(old.ID()))
	talk("both removed the old key")
	if err := b.Remove(old.ID()); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("remove twice: %v", err)
	}
	if keys := a.Keys(); len(keys) != 1 || keys[0].ID != next.ID() || !keys[0].Primary {
		t.Fatalf("keys %v", keys)
	}
	if !bytes.Equal(a.Gossip().GetPrimaryKey(), next.GossipKey()) || len(a.Gossip().GetKeys()) != 1 {
		t.Fatal("the gossip keyring did not follow the rotation")
	}
	// A node left behind with the old key only is refused now.
	stale := ring(t, "stale", old)
	if _, cErr, _ := handshake(stale, a, "a"); cErr == nil {
		t.Fatal("a node with a removed key still connects")
	}
}

func TestRing_PersistsAndTheFileWinsOverTheFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	first, second := secret(t), secret(t)
	r, err := Open(path, "a", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Install(second); err != nil {
		t.Fatal(err)
	}
	if err := r.Use(second.ID()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	// Restarted with the original --cluster-secret: the rotation stands.
	again, err := Open(path, "a", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := again.Keys()
	if len(keys) != 2 || keys[1].ID != second.ID() || !keys[1].Primary {
		t.Fatalf("after a restart: keys %v", keys)
	}
	if r, err := Open(filepath.Join(dir, "none.json"), "a", nil, nil); r != nil || err != nil {
		t.Fatalf("no file, no secret: %v, %v; want no ring", r, err)
	}
	if err := os.WriteFile(path, []byte(`{"primary":"x","keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, "a", first, nil); err == nil {
		t.Fatal("a damaged keyring file was accepted")
	}
}

// writePEM writes blocks to a new file in dir.
func writePEM(t *testing.T, dir, name, typ string, ders ...[]byte) string {
	t.Helper()
	var buf bytes.Buffer
	for _, d := range ders {
		_ = pem.Encode(&buf, &pem.Block{Type: typ, Bytes: d})
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// operatorPKI makes a CA and a certificate for each node, as an operator's
// own PKI would (DNS-free: the common name carries the node name).
func operatorPKI(t *testing.T, nodes ...string) (caFile string, certs, keys map[string]string) {
	t.Helper()
	dir := t.TempDir()
	caPub, caKey, _ := ed25519.GenerateKey(rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ops CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caPub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	certs, keys = map[string]string{}, map[string]string{}
	for i, n := range nodes {
		pub, key, _ := ed25519.GenerateKey(rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: n},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		certs[n] = writePEM(t, dir, n+".pem", "CERTIFICATE", der)
		keys[n] = writePEM(t, dir, n+".key", "PRIVATE KEY", kder)
	}
	return caFile, certs, keys
}

func TestPKI_OperatorCertificates(t *testing.T) {
	caFile, certs, keys := operatorPKI(t, "a", "b")
	a, err := LoadPKI(certs["a"], keys["a"], caFile, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadPKI(certs["b"], keys["b"], caFile, "b")
	if err != nil {
		t.Fatal(err)
	}
	if seen, cErr, sErr := handshake(a, b, "b"); cErr != nil || sErr != nil || seen != "a" {
		t.Fatalf("handshake: %v %v, saw %q", cErr, sErr, seen)
	}
	if _, err := LoadPKI(certs["a"], keys["a"], caFile, "b"); err == nil || !strings.Contains(err.Error(), `issued to "a"`) {
		t.Fatalf("another node's certificate: %v", err)
	}
	// A node of the derived-secret kind does not trust the operator's CA.
	if _, cErr, _ := handshake(ring(t, "c", secret(t)), b, "b"); cErr == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
}
