package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// The HTTP API over TLS (--tls-cert, --tls-key, --tls-client-ca). The
// certificate and key are read again when their files change (checked at
// most once a second, on a handshake) or on Reload (SIGHUP), so a rotation
// by cert-manager or an operator needs no restart; a pair that does not
// load keeps the previous one serving and is logged.

// certCheckEvery is how often a handshake may look at the files again.
const certCheckEvery = time.Second

// apiCert serves the API's certificate and reloads it when its files
// change. It is safe for concurrent use.
type apiCert struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
}

func newAPICert(certFile, keyFile string, logger *slog.Logger) (*apiCert, error) {
	c := &apiCert{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the pair; on error the current certificate stays.
func (c *apiCert) load() error {
	certMod, keyMod, err := c.modTimes()
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load the API's TLS certificate: %w", err)
	}
	c.mu.Lock()
	c.cert, c.certMod, c.keyMod = &pair, certMod, keyMod
	c.mu.Unlock()
	return nil
}

func (c *apiCert) modTimes() (time.Time, time.Time, error) {
	ci, err := os.Stat(c.certFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("the API's TLS certificate: %w", err)
	}
	ki, err := os.Stat(c.keyFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("the API's TLS key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// Reload reads the pair again now (SIGHUP).
func (c *apiCert) Reload() error {
	err := c.load()
	if err != nil {
		c.logger.Error("the API's TLS certificate did not reload; the previous one stays", "err", err)
	} else {
		c.logger.Info("reloaded the API's TLS certificate", "cert", c.certFile)
	}
	return err
}

// get is tls.Config.GetCertificate: the current pair, reloaded first if
// its files changed since the last look (at most once a second).
func (c *apiCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	due := time.Since(c.checkedAt) >= certCheckEvery
	if due {
		c.checkedAt = time.Now()
	}
	certMod, keyMod := c.certMod, c.keyMod
	c.mu.Unlock()
	if due {
		if cm, km, err := c.modTimes(); err == nil && (!cm.Equal(certMod) || !km.Equal(keyMod)) {
			_ = c.Reload()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert, nil
}

// apiTLSConfig is the API's TLS configuration: TLS 1.2 or later with Go's
// default suites, the reloading certificate, and with a client CA,
// verified client certificates required.
func apiTLSConfig(cert *apiCert, clientCA string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.get}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("the API's client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("the API's client CA: no PEM certificate in " + clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
