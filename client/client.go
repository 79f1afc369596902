package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"shoal/internal/httpjson"
)

// Error is the API's error type, re-exported so that programs outside this
// module can use errors.As on the errors a Client returns.
type Error = httpjson.Error

// Sentinels for errors.Is. They match any *Error with the same code,
// whatever its message.
var (
	ErrNotFound     = httpjson.ErrNotFound
	ErrLogNotFound  = httpjson.Errorf(http.StatusNotFound, "log_not_found", "no such log")
	ErrLogTrimmed   = httpjson.Errorf(http.StatusGone, "log_trimmed", "the entries asked for were trimmed by retention")
	ErrUnauthorized = httpjson.ErrUnauthorized
	ErrNotReady     = httpjson.Errorf(http.StatusServiceUnavailable, "not_ready", "the node is not ready")
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 1 << 20

// Client talks to one shoal node over HTTP. It is safe for concurrent use.
// A Client has no timeout of its own: every method honours its context, and
// callers set deadlines there (Tail runs until its context is done).
type Client struct {
	base     *url.URL
	tls      *tls.Config
	token    string
	hc       *http.Client
	backoff  backoff
	idleTail time.Duration
}

// Option configures a Client in New.
type Option func(*Client)

// WithToken sends token as a bearer token on every request. An empty token
// sends no Authorization header.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithHTTPClient makes the Client use hc instead of its own keep-alive
// client. hc should not set a Timeout: it would cut Tail streams.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithHTTP2 makes the Client speak HTTP/2 to the node, without TLS with
// prior knowledge (h2c) for an http:// address: every request, streams
// included, is multiplexed on one connection, instead of one HTTP/1.1
// connection per request in flight. shoal nodes serve both; a proxy in
// between that speaks only HTTP/1.1 breaks it.
func WithHTTP2() Option {
	return func(c *Client) {
		t := newTransport()
		p := new(http.Protocols)
		if c.base != nil && c.base.Scheme == "https" {
			p.SetHTTP2(true)
		} else {
			p.SetUnencryptedHTTP2(true)
		}
		t.Protocols = p
		c.hc = &http.Client{Transport: t}
	}
}

// WithReconnectBackoff sets the delay before Tail reconnects after a
// dropped stream: first, doubling up to limit. The defaults are 100ms and
// 5s.
func WithReconnectBackoff(first, limit time.Duration) Option {
	return func(c *Client) {
		if first > 0 {
			c.backoff.min = first
		}
		if limit >= c.backoff.min {
			c.backoff.max = limit
		}
	}
}

// WithTailIdleTimeout sets how long a Tail stream may stay silent (no
// entry and no heartbeat comment) before it is treated as dropped and
// reconnected. Zero disables the check. The default is 60s.
func WithTailIdleTimeout(d time.Duration) Option {
	return func(c *Client) { c.idleTail = d }
}

// New returns a Client for the node at addr, either a URL
// ("http://10.0.0.1:7480", "https://shoal.example") or a bare host:port,
// which means http. New does no I/O.
func New(addr string, opts ...Option) (*Client, error) {
	base, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:     base,
		hc:       &http.Client{Transport: newTransport()},
		backoff:  backoff{min: 100 * time.Millisecond, max: 5 * time.Second},
		idleTail: 60 * time.Second,
	}
	for _, opt := range opts {
		opt(c)
	}
	if t, ok := c.hc.Transport.(*http.Transport); ok && c.tls != nil {
		t.TLSClientConfig = c.tls
	}
	return c, nil
}

// WithTLS makes the Client use cfg for https:// addresses: the CAs it
// trusts (RootCAs) and the certificate it presents (Certificates). See
// LoadTLS.
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) { c.tls = cfg }
}

// LoadTLS builds a client TLS configuration from PEM files: caFile, if not
// empty, replaces the system's CAs (a private CA's bundle); certFile and
// keyFile, both or neither, are the client certificate a node started
// with --tls-client-ca requires.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("a client certificate needs both its certificate and its key")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Addr returns the base URL the Client sends requests to.
func (c *Client) Addr() string { return c.base.String() }

func parseAddr(addr string) (*url.URL, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return nil, fmt.Errorf("client address: empty")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("client address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client address %q: scheme must be http or https", addr)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client address %q: no host", addr)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client address %q: must not have a query or fragment", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// newTransport is a keep-alive transport sized for many concurrent
// requests to one node.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// endpoint builds the URL of an API path whose segments are already
// escaped, with an optional query.
func (c *Client) endpoint(path string, query url.Values) string {
	s := c.base.String() + path
	if len(query) > 0 {
		s += "?" + query.Encode()
	}
	return s
}

// newRequest builds a request with the Client's headers; in, when not
// nil, is sent as the JSON body.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request body: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, query), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "shoal-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends one request and decodes a 2xx JSON body into out (skipped when
// out is nil or the body is empty). A non-2xx response is returned as an
// *httpjson.Error. The response headers are returned for callers that need
// them.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (http.Header, error) {
	req, err := c.newRequest(ctx, method, path, query, in)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, readError(resp)
	}
	if out == nil {
		return resp.Header, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.Header, fmt.Errorf("read response: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return resp.Header, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.Header, fmt.Errorf("decode response: %w", err)
	}
	return resp.Header, nil
}

// readError rebuilds the API error from a non-2xx response.
func readError(resp *http.Response) *httpjson.Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)) // a short body still yields a generic error
	e := httpjson.ReadError(resp.StatusCode, b)
	if secs := resp.Header.Get("Retry-After"); secs != "" {
		if d, err := time.ParseDuration(secs + "s"); err == nil && d > 0 {
			e.RetryAfter = d
		}
	}
	return e
}

// closeBody drains a little of what is left so the connection can be
// reused, then closes it.
func closeBody(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// escape escapes one path segment (a log or peer name).
func escape(segment string) string { return url.PathEscape(segment) }
