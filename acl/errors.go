package acl

import (
	"errors"
	"net/http"

	"shoal/internal/httpjson"
)

// Client-facing errors. They are *httpjson.Error values, so errors.Is
// matches them by code, also after a forwarded create or revoke rebuilt
// them on the follower that took the request.
var (
	// ErrInvalidName: a token name is 1-128 bytes of [A-Za-z0-9._-], not
	// "." or "..", and not shaped like an accessor id (so DELETE
	// /v1/acl/tokens/{id} is never ambiguous).
	ErrInvalidName = httpjson.BadRequest("invalid_name", "a token name is 1 to %d bytes of letters, digits, '.', '_' and '-', and not shaped like an accessor id", maxNameLen)
	// ErrInvalidRule is wrapped by every error ParseRule returns; the API
	// answers it with the parse error as its message and "rule", the
	// index of the rule, as a detail.
	ErrInvalidRule = httpjson.BadRequest("invalid_rule", "invalid acl rule")
	// ErrInvalidRules: a token has no rules or more than 64.
	ErrInvalidRules = httpjson.BadRequest("invalid_rules", "a token has 1 to %d rules", maxRules)
	// ErrInvalidTTL: the ttl is not a Go duration, or outside 1s to
	// --acl-max-ttl.
	ErrInvalidTTL = httpjson.BadRequest("invalid_ttl", "the ttl is a duration such as \"720h\", at least %s", minTTL)

	// ErrTokenNotFound: no token has that accessor id (or name).
	ErrTokenNotFound = httpjson.Errorf(http.StatusNotFound, "token_not_found", "no such token")
	// ErrNameTaken: another token has that name.
	ErrNameTaken = httpjson.Errorf(http.StatusConflict, "token_name_taken", "a token with that name exists")
	// ErrTooManyTokens: the cluster holds the most tokens it may (10,000).
	ErrTooManyTokens = httpjson.Errorf(http.StatusConflict, "too_many_tokens", "the cluster holds %d tokens, the most it may", maxTokens)
	// ErrDuplicateToken: the accessor id or secret of a create is already
	// in use. It cannot happen with random ids and secrets; the state
	// machine refuses it to keep its indexes consistent.
	ErrDuplicateToken = httpjson.Errorf(http.StatusConflict, "duplicate_token", "the accessor id or secret is already in use")
	// ErrShuttingDown: this node is stopping.
	ErrShuttingDown = httpjson.ErrShuttingDown
)

// State-machine errors: a command or snapshot that cannot be applied.
var (
	// ErrUnknownOp: a command with an op this version does not know.
	ErrUnknownOp = errors.New("unknown acl command op")
	// ErrMalformedCommand: a command payload that does not decode or
	// breaks a limit.
	ErrMalformedCommand = errors.New("malformed acl command")
	// ErrMalformedSnapshot: a snapshot that does not decode or breaks an
	// invariant.
	ErrMalformedSnapshot = errors.New("malformed acl snapshot")
)
