package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"shoal/acl"
	"shoal/api"
	"shoal/internal/httpjson"
)

// A client holds no Raft state, so no tokens: it asks a server what a
// scoped token's secret names, and keeps the answer for tokenTTL, as
// Consul's client agents cache token resolutions (token_ttl). Requests it
// forwards are checked by the server anyway; the cache is for what it
// serves itself (kv). A revocation reaches a client's own requests and
// streams within tokenTTL: each cached token is asked for again after
// that, and one a server no longer knows is revoked here too.

// methodResolveToken resolves a scoped token's secret on a server.
const methodResolveToken = "acl.resolve"

// Cache lifetimes of a client's token resolutions: a token a server
// named is kept for tokenTTL (1 s with the local timing of tests and
// --dev); a secret no server knows for unknownTokenTTL (a token created
// a moment ago may be known soon).
const (
	tokenTTL        = 10 * time.Second
	localTokenTTL   = time.Second
	unknownTokenTTL = time.Second
	resolveTimeout  = 2 * time.Second
)

// maxCachedTokens bounds the cache: a server holds at most 10,000 tokens,
// so beyond twice that the cache is full of secrets nobody knows (a
// caller trying random ones), which are then asked about without being
// kept.
const maxCachedTokens = 20000

// resolvedToken is a server's answer on the wire.
type resolvedToken struct {
	AccessorID string    `json:"accessor_id"`
	Name       string    `json:"name"`
	Rules      []string  `json:"rules"`
	Expires    time.Time `json:"expires,omitzero"`
}

// serveTokens answers clients' resolutions on a server that runs the acl
// module: unauthorized when the secret names no live token.
func (a *Agent) serveTokens() {
	m, ok := a.Module("acl")
	if !ok {
		return
	}
	tokens, ok := m.(api.Tokens)
	if !ok {
		return
	}
	a.rpc.Handle(methodResolveToken, func(ctx context.Context, from string, body []byte) ([]byte, error) {
		tok, ok := tokens.Authenticate(string(body))
		if !ok {
			return nil, httpjson.ErrUnauthorized
		}
		out := resolvedToken{AccessorID: tok.AccessorID, Name: tok.Name, Expires: tok.Expires}
		for _, r := range tok.Rules {
			out.Rules = append(out.Rules, r.String())
		}
		return json.Marshal(out)
	})
}

// remoteTokens is a client's api.TokenResolver.
type remoteTokens struct {
	f   *apiForwarder // the servers, as the forwarder sees them
	ttl time.Duration // tokenTTL, or localTokenTTL

	mu       sync.Mutex
	cache    map[[sha256.Size]byte]cachedToken
	onRevoke []func(accessor string)
}

type cachedToken struct {
	secret string // kept to ask again; only in this process's memory
	tok    acl.Token
	known  bool
	at     time.Time
}

func newRemoteTokens(f *apiForwarder) *remoteTokens {
	ttl := tokenTTL
	if f.a.cfg.Local {
		ttl = localTokenTTL
	}
	return &remoteTokens{f: f, ttl: ttl, cache: map[[sha256.Size]byte]cachedToken{}}
}

var errTokensUnavailable = httpjson.Errorf(http.StatusServiceUnavailable, "no_server",
	"this client could not reach a server to check the token")

// Resolve returns the token secret names: from the cache while fresh,
// else from a server. httpjson.ErrUnauthorized if no server knows it, a
// 503 if none could be asked.
func (r *remoteTokens) Resolve(secret string) (acl.Token, error) {
	h := sha256.Sum256([]byte(secret))
	now := time.Now()
	r.mu.Lock()
	c, hit := r.cache[h]
	r.mu.Unlock()
	if hit && now.Sub(c.at) < r.ttlOf(c) {
		return c.result(now)
	}
	c, err := r.ask(secret)
	if err != nil {
		return acl.Token{}, err
	}
	r.remember(h, c)
	return c.result(now)
}

// remember caches an answer; past maxCachedTokens only known tokens.
func (r *remoteTokens) remember(h [sha256.Size]byte, c cachedToken) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.known || len(r.cache) < maxCachedTokens {
		r.cache[h] = c
	}
}

func (r *remoteTokens) ttlOf(c cachedToken) time.Duration {
	if c.known {
		return r.ttl
	}
	return unknownTokenTTL
}

func (c cachedToken) result(now time.Time) (acl.Token, error) {
	if !c.known || c.tok.Expired(now) {
		return acl.Token{}, httpjson.ErrUnauthorized
	}
	return c.tok, nil
}

// ask resolves secret on an alive server (the forwarder's choice order).
func (r *remoteTokens) ask(secret string) (cachedToken, error) {
	ctx, cancel := context.WithTimeout(r.f.a.ctx, resolveTimeout)
	defer cancel()
	for _, s := range r.f.servers() {
		out, err := r.f.a.peers.rpc.Call(ctx, s.Name, s.Meta.RaftAddr, methodResolveToken, []byte(secret))
		var e *httpjson.Error
		switch {
		case err == nil:
			tok, derr := decodeResolved(out)
			if derr != nil {
				return cachedToken{}, errTokensUnavailable.WithMessage("a server's answer could not be read: %s", derr.Error())
			}
			return cachedToken{secret: secret, tok: tok, known: true, at: time.Now()}, nil
		case errors.As(err, &e) && e.Code == httpjson.ErrUnauthorized.Code:
			return cachedToken{at: time.Now()}, nil // the secret is not kept for a token nobody knows
		}
		if ctx.Err() != nil {
			break
		}
	}
	e := errTokensUnavailable.WithMessage("this client could not reach a server to check the token")
	e.RetryAfter = time.Second
	return cachedToken{}, e
}

func decodeResolved(b []byte) (acl.Token, error) {
	var w resolvedToken
	if err := json.Unmarshal(b, &w); err != nil {
		return acl.Token{}, err
	}
	tok := acl.Token{AccessorID: w.AccessorID, Name: w.Name, Expires: w.Expires}
	for _, s := range w.Rules {
		rule, err := acl.ParseRule(s)
		if err != nil {
			return acl.Token{}, err
		}
		tok.Rules = append(tok.Rules, rule)
	}
	return tok, nil
}

// Authenticate implements api.Tokens (the console's login).
func (r *remoteTokens) Authenticate(secret string) (acl.Token, bool) {
	tok, err := r.Resolve(secret)
	return tok, err == nil
}

// OnRevoke implements api.Tokens.
func (r *remoteTokens) OnRevoke(fn func(accessor string)) {
	r.mu.Lock()
	r.onRevoke = append(r.onRevoke, fn)
	r.mu.Unlock()
}

// refresh asks again for every cached token whose answer is older than
// its TTL, drops what is stale, and revokes here what the servers no
// longer know (revoked, expired). A token no server could be asked about
// keeps its last answer until one can.
func (r *remoteTokens) refresh() {
	now := time.Now()
	var due []cachedToken
	r.mu.Lock()
	for h, c := range r.cache {
		switch {
		case !c.known && now.Sub(c.at) >= unknownTokenTTL:
			delete(r.cache, h)
		case c.known && now.Sub(c.at) >= r.ttl:
			due = append(due, c)
		}
	}
	r.mu.Unlock()
	for _, old := range due {
		c, err := r.ask(old.secret)
		if err != nil {
			continue
		}
		h := sha256.Sum256([]byte(old.secret))
		r.mu.Lock()
		if c.known {
			r.cache[h] = c
		} else {
			delete(r.cache, h)
		}
		fns := r.onRevoke
		r.mu.Unlock()
		if !c.known || c.tok.AccessorID != old.tok.AccessorID {
			for _, fn := range fns {
				fn(old.tok.AccessorID)
			}
		}
	}
}

// run refreshes the cache until the agent stops.
func (r *remoteTokens) run(ctx context.Context) {
	t := time.NewTicker(r.ttl / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.refresh()
		}
	}
}

var _ api.TokenResolver = (*remoteTokens)(nil)
