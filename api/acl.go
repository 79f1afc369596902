package api

import (
	"context"
	"net/http"
	"sync"

	"shoal/acl"
	"shoal/internal/httpjson"
)

// Scoped tokens (the acl module; docs/security.md, "Tokens"). --token is
// the bootstrap management token, with every right; any other bearer
// secret must be a token of the acl module whose rules allow the
// request's resource (acl.ResourceOf). Without --token the API is open,
// as before, and scoped tokens are not checked: ACLs need the bootstrap
// token to exist.

// Tokens is implemented by the acl module.
type Tokens interface {
	Authenticate(secret string) (acl.Token, bool)
	OnRevoke(fn func(accessor string))
}

// ErrForbidden: the token is valid but none of its rules allows the
// request; it carries "required" (the rule that would).
var ErrForbidden = httpjson.Errorf(http.StatusForbidden, "forbidden", "this token does not allow the request")

// tokens finds the acl module among the node's modules (nil if it does
// not run).
func (s *server) tokens() Tokens {
	if s.Modules == nil {
		return nil
	}
	for _, m := range s.Modules.Modules() {
		if t, ok := m.(Tokens); ok {
			return t
		}
	}
	return nil
}

// authorize decides a request made with secret, which is not the
// bootstrap token: the scoped token it names must allow the request's
// resource. It returns the token.
func authorize(t Tokens, secret string, r *http.Request) (acl.Token, error) {
	if t == nil {
		return acl.Token{}, httpjson.ErrUnauthorized
	}
	tok, ok := t.Authenticate(secret)
	if !ok {
		return acl.Token{}, httpjson.ErrUnauthorized
	}
	res, ok := acl.ResourceOfRequest(r)
	if !ok {
		return acl.Token{}, ErrForbidden.WithMessage("no scoped token allows %s %s: it needs the bootstrap token", r.Method, echoPath(r))
	}
	if !tok.Allows(res) {
		return acl.Token{}, ErrForbidden.WithMessage("token %q does not allow %s", tok.Name, res).WithDetail("required", res.String())
	}
	return tok, nil
}

// echoPath is the request's path as an error may quote it.
func echoPath(r *http.Request) string {
	p := r.URL.Path
	if len(p) > 128 {
		p = p[:128] + "…"
	}
	return p
}

// revocations ends the requests, streams above all, of a token when it is
// revoked or expires: each request a scoped token authorised runs under
// a context that the token's revocation cancels.
type revocations struct {
	mu   sync.Mutex
	next uint64
	open map[string]map[uint64]context.CancelFunc // by accessor id
}

func newRevocations() *revocations {
	return &revocations{open: map[string]map[uint64]context.CancelFunc{}}
}

// track returns r's context, cancelled if accessor is revoked, and the
// function to call once the request is done.
func (v *revocations) track(accessor string, r *http.Request) (context.Context, func()) {
	ctx, cancel := context.WithCancel(r.Context())
	v.mu.Lock()
	v.next++
	id := v.next
	if v.open[accessor] == nil {
		v.open[accessor] = map[uint64]context.CancelFunc{}
	}
	v.open[accessor][id] = cancel
	v.mu.Unlock()
	return ctx, func() {
		v.mu.Lock()
		delete(v.open[accessor], id)
		if len(v.open[accessor]) == 0 {
			delete(v.open, accessor)
		}
		v.mu.Unlock()
		cancel()
	}
}

// revoked cancels every request of accessor. It runs on the state
// machine's goroutine (acl's OnRevoke): cancelling only closes channels.
func (v *revocations) revoked(accessor string) {
	v.mu.Lock()
	cancels := v.open[accessor]
	delete(v.open, accessor)
	v.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}
