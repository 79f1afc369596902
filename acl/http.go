package acl

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
)

// Routes mounts the module's routes on the /v1 router. Once the API
// checks scoped tokens, every one of them needs the operator rule (see
// the route table in resource.go):
//
//	POST   /v1/acl/tokens             {"name","rules":[...],"ttl":"720h"} → 201, the token with its secret_id (shown once)
//	GET    /v1/acl/tokens             {"tokens":[...]}, without secrets, in name order
//	GET    /v1/acl/tokens/{accessor}  one token, without its secret
//	DELETE /v1/acl/tokens/{accessor}  revoke it (an accessor id, or a name)
//
// Reads are linearizable (a Raft read barrier first). Handlers run
// concurrently with each other and with the state machine.
func (a *ACL) Routes(r chi.Router) {
	a.init()
	r.Route("/acl/tokens", func(r chi.Router) {
		r.Post("/", httpjson.Handle(a.handleCreate))
		r.Get("/", httpjson.Handle(a.handleList))
		r.Get("/{accessor}", httpjson.Handle(a.handleGet))
		r.Delete("/{accessor}", httpjson.Handle(a.handleRevoke))
	})
}

// TokenJSON is a token as the API shows it. SecretID is only in the answer
// to its creation.
type TokenJSON struct {
	AccessorID string   `json:"accessor_id"`
	SecretID   string   `json:"secret_id,omitempty"`
	Name       string   `json:"name"`
	Rules      []string `json:"rules"`
	Created    string   `json:"created"`
	// Expires is null for a token that never expires.
	Expires *string `json:"expires"`
}

func tokenJSON(t Token, secret string) TokenJSON {
	j := TokenJSON{AccessorID: t.AccessorID, SecretID: secret, Name: t.Name, Rules: make([]string, len(t.Rules)), Created: t.Created.Format(time.RFC3339Nano)}
	for i, r := range t.Rules {
		j.Rules[i] = r.String()
	}
	if !t.Expires.IsZero() {
		e := t.Expires.Format(time.RFC3339Nano)
		j.Expires = &e
	}
	return j
}

type createRequest struct {
	Name  string          `json:"name"`
	Rules []string        `json:"rules"`
	TTL   json.RawMessage `json:"ttl"`
}

func (a *ACL) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var body createRequest
	if err := httpjson.DecodeJSON(r, &body); err != nil {
		return err
	}
	req := CreateRequest{Name: body.Name}
	if len(body.Rules) == 0 || len(body.Rules) > maxRules {
		return ErrInvalidRules.WithMessage("a token has 1 to %d rules, got %d", maxRules, len(body.Rules))
	}
	for i, s := range body.Rules {
		rule, err := ParseRule(s)
		if err != nil {
			return ErrInvalidRule.WithMessage("rule %d: %s", i, err.Error()).WithDetail("rule", i)
		}
		req.Rules = append(req.Rules, rule)
	}
	if len(body.TTL) > 0 && string(body.TTL) != "null" {
		var s string
		if err := json.Unmarshal(body.TTL, &s); err != nil {
			return ErrInvalidTTL.WithMessage("the ttl is a string such as \"720h\"")
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return ErrInvalidTTL.WithMessage("the ttl %q is not a duration such as \"720h\"", s)
		}
		if d <= 0 {
			return ErrInvalidTTL.WithMessage("the ttl must be positive (leave it out for a token that never expires)")
		}
		req.TTL = d
	}
	t, secret, err := a.Create(r.Context(), req)
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusCreated, tokenJSON(t, secret))
	return nil
}

func (a *ACL) handleList(w http.ResponseWriter, r *http.Request) error {
	if err := a.readBarrier(r); err != nil {
		return err
	}
	tokens := a.Tokens()
	out := make([]TokenJSON, len(tokens))
	for i, t := range tokens {
		out[i] = tokenJSON(t, "")
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (a *ACL) handleGet(w http.ResponseWriter, r *http.Request) error {
	if err := a.readBarrier(r); err != nil {
		return err
	}
	t, ok := a.Token(chi.URLParam(r, "accessor"))
	if !ok {
		return ErrTokenNotFound
	}
	httpjson.WriteJSON(w, http.StatusOK, tokenJSON(t, ""))
	return nil
}

func (a *ACL) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	accessor, name, err := a.Revoke(r.Context(), chi.URLParam(r, "accessor"))
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]string{"accessor_id": accessor, "name": name})
	return nil
}

// readBarrier waits until this node has applied every command committed
// before the request (503 without a leader).
func (a *ACL) readBarrier(r *http.Request) error {
	if !a.track() {
		return ErrShuttingDown
	}
	defer a.untrack()
	return a.host.Raft().ReadIndex(r.Context())
}
