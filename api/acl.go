package api

import (
	"context"
	"net/http"
	"sync"

	"shoal/acl"
	"shoal/internal/httpjson"
	"shoal/internal/revoke"
	"shoal/modules"
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

// TokenResolver is Tokens on a node that asks elsewhere (a client, which
// holds no tokens): it may fail to know. Resolve returns the token, or
// httpjson.ErrUnauthorized if the secret names none, or another error
// (503) if it could not find out.
type TokenResolver interface {
	Tokens
	Resolve(secret string) (acl.Token, error)
}

// ErrForbidden: the token is valid but none of its rules allows the
// request; it carries "required" (the rule that would).
var ErrForbidden = httpjson.Errorf(http.StatusForbidden, "forbidden", "this token does not allow the request")

// tokens is Deps.Tokens, else the acl module among the node's modules
// (nil if it does not run).
func (s *server) tokens() Tokens {
	if s.Deps.Tokens != nil {
		return s.Deps.Tokens
	}
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
	var tok acl.Token
	if tr, remote := t.(TokenResolver); remote {
		var err error
		if tok, err = tr.Resolve(secret); err != nil {
			return acl.Token{}, err
		}
	} else {
		var ok bool
		if tok, ok = t.Authenticate(secret); !ok {
			return acl.Token{}, httpjson.ErrUnauthorized
		}
	}
	res, ok := acl.ResourceOfRequest(r)
	if !ok {
		return acl.Token{}, ErrForbidden.WithMessage("no scoped token allows %s %s: it needs the bootstrap token", r.Method, modules.Echo(r.URL.Path))
	}
	if !tok.Allows(res) {
		required := modules.Echo(res.String()) // the name is the client's: echoed truncated
		return acl.Token{}, ErrForbidden.WithMessage("token %q does not allow %s", tok.Name, required).WithDetail("required", required)
	}
	return tok, nil
}

// revocations ends the requests, streams and websockets of a token when
// it is revoked or expires. Each request a scoped token authorised runs
// under a context that the revocation cancels, and carries the token's
// revocation channel (internal/revoke) for what outlives the handler (a
// websocket, once upgraded, leaves the request's context behind).
type revocations struct {
	mu       sync.Mutex
	next     uint64
	open     map[string]map[uint64]context.CancelFunc // by accessor id
	channels map[string]chan struct{}                 // by accessor id: closed at its revocation
}

func newRevocations() *revocations {
	return &revocations{open: map[string]map[uint64]context.CancelFunc{}, channels: map[string]chan struct{}{}}
}

// track returns r's context, cancelled if accessor is revoked and
// carrying its revocation channel, and the function to call once the
// request is done. There is one channel per token that made a request
// (at most the cluster's tokens), not one per request.
func (v *revocations) track(accessor string, r *http.Request) (context.Context, func()) {
	ctx, cancel := context.WithCancel(r.Context())
	v.mu.Lock()
	v.next++
	id := v.next
	if v.open[accessor] == nil {
		v.open[accessor] = map[uint64]context.CancelFunc{}
	}
	v.open[accessor][id] = cancel
	ch := v.channels[accessor]
	if ch == nil {
		ch = make(chan struct{})
		v.channels[accessor] = ch
	}
	v.mu.Unlock()
	return revoke.With(ctx, ch), func() {
		v.mu.Lock()
		delete(v.open[accessor], id)
		if len(v.open[accessor]) == 0 {
			delete(v.open, accessor)
		}
		v.mu.Unlock()
		cancel()
	}
}

// revoked cancels every request of accessor and fires its channel. It
// runs on the state machine's goroutine (acl's OnRevoke): cancelling and
// closing only close channels.
func (v *revocations) revoked(accessor string) {
	v.mu.Lock()
	cancels := v.open[accessor]
	delete(v.open, accessor)
	ch := v.channels[accessor]
	delete(v.channels, accessor)
	v.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
	if ch != nil {
		close(ch)
	}
}
