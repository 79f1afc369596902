package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"shoal/internal/httpjson"
)

// Errors of the acl module, for errors.Is. They match any *Error with the
// same code.
var (
	// ErrTokenNotFound: no token has that accessor id or name.
	ErrTokenNotFound = httpjson.Errorf(http.StatusNotFound, "token_not_found", "no such token")
	// ErrTokenNameTaken: another token has that name.
	ErrTokenNameTaken = httpjson.Errorf(http.StatusConflict, "token_name_taken", "a token with that name exists")
	// ErrInvalidName: a name is 1 to 128 bytes of letters, digits, '.',
	// '_' and '-'; a token's is also not shaped like an accessor id. The
	// locks and objectsync modules answer the same code for their names.
	ErrInvalidName = httpjson.BadRequest("invalid_name", "invalid name")
	// ErrInvalidRule: a rule does not parse; the error's message says
	// which and why, and its "rule" detail is the rule's index.
	ErrInvalidRule = httpjson.BadRequest("invalid_rule", "invalid acl rule")
	// ErrInvalidRules: a token has 1 to 64 rules.
	ErrInvalidRules = httpjson.BadRequest("invalid_rules", "a token has 1 to 64 rules")
	// ErrInvalidTTL: the TTL is negative, below 1s, or above the node's
	// --acl-max-ttl.
	ErrInvalidTTL = httpjson.BadRequest("invalid_ttl", "invalid token ttl")
	// ErrTooManyTokens: the cluster holds the most tokens it may.
	ErrTooManyTokens = httpjson.Errorf(http.StatusConflict, "too_many_tokens", "the cluster holds the most tokens it may")
)

// TokenRequest is what CreateToken asks for (POST /v1/acl/tokens).
type TokenRequest struct {
	// Name is unique in the cluster: 1 to 128 bytes of letters, digits,
	// '.', '_' and '-'.
	Name string `json:"name"`
	// Rules are "operator" or MODULE:ACTION:PATTERN, such as
	// "kv:write:config/" or "logs:read:*" (see docs/cli.md).
	Rules []string `json:"rules"`
	// TTL, if not 0, makes the token expire that long after its creation;
	// 0 makes a token that never expires. It travels as a duration string
	// ("720h0m0s").
	TTL time.Duration `json:"-"`
}

// tokenRequestJSON is a TokenRequest as the API reads it.
type tokenRequestJSON struct {
	Name  string   `json:"name"`
	Rules []string `json:"rules"`
	TTL   string   `json:"ttl,omitempty"`
}

// MarshalJSON writes the request as the API reads it: the TTL as a
// duration string, left out when 0.
func (r TokenRequest) MarshalJSON() ([]byte, error) {
	w := tokenRequestJSON{Name: r.Name, Rules: r.Rules}
	if r.TTL != 0 {
		w.TTL = r.TTL.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *TokenRequest) UnmarshalJSON(b []byte) error {
	var w tokenRequestJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = TokenRequest{Name: w.Name, Rules: w.Rules}
	if w.TTL != "" {
		d, err := time.ParseDuration(w.TTL)
		if err != nil {
			return fmt.Errorf("ttl: %w", err)
		}
		r.TTL = d
	}
	return nil
}

// Token is an API token as the node shows it, without its secret.
type Token struct {
	// AccessorID names the token in the API (a UUID, not a secret).
	AccessorID string `json:"accessor_id"`
	Name       string `json:"name"`
	// Rules are the token's rules in their canonical text.
	Rules []string `json:"rules"`
	// Created is when the leader committed the token, by its clock.
	Created time.Time `json:"created"`
	// Expires is when the token stops working; nil for a token that never
	// expires.
	Expires *time.Time `json:"expires"`
}

// TokenSecret is a token with its secret, as CreateToken returns it: the
// only time the secret is shown. The secret is what a client sends as its
// bearer token (WithToken); nodes keep only its hash.
type TokenSecret struct {
	Token
	SecretID string `json:"secret_id"`
}

// tokenPath is the API path of one token; an empty id, "." or ".." would
// name the list or another path, so they are refused locally.
func tokenPath(id string) (string, error) {
	switch id {
	case "", ".", "..":
		return "", ErrTokenNotFound.WithMessage("no token has the accessor id or name %q", id)
	}
	return "/v1/acl/tokens/" + escape(id), nil
}

// CreateToken creates a token through Raft and returns it with its
// secret, which the cluster does not keep: store it now. Errors: the
// invalid_* errors above for a bad request (400), ErrTokenNameTaken and
// ErrTooManyTokens (409).
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenSecret, error) {
	var out TokenSecret
	if _, err := c.do(ctx, http.MethodPost, "/v1/acl/tokens", nil, req, &out); err != nil {
		return TokenSecret{}, fmt.Errorf("create token %q: %w", req.Name, err)
	}
	return out, nil
}

// Tokens returns every token of the cluster, in name order, without
// secrets (expired ones the leader has not removed yet included). The
// read is linearizable.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/acl/tokens", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	if out.Tokens == nil {
		out.Tokens = []Token{}
	}
	return out.Tokens, nil
}

// Token returns the token with accessor id (or name) accessor, without
// its secret; ErrTokenNotFound if there is none. The read is
// linearizable.
func (c *Client) Token(ctx context.Context, accessor string) (Token, error) {
	path, err := tokenPath(accessor)
	if err == nil {
		var t Token
		if _, err = c.do(ctx, http.MethodGet, path, nil, nil, &t); err == nil {
			return t, nil
		}
	}
	return Token{}, fmt.Errorf("read token %q: %w", accessor, err)
}

// RevokeToken removes the token with accessor id (or name) accessor
// through Raft: it stops working on every node once they applied the
// removal. ErrTokenNotFound if there is none.
func (c *Client) RevokeToken(ctx context.Context, accessor string) error {
	path, err := tokenPath(accessor)
	if err == nil {
		if _, err = c.do(ctx, http.MethodDelete, path, nil, nil, nil); err == nil {
			return nil
		}
	}
	return fmt.Errorf("revoke token %q: %w", accessor, err)
}
