package objectsync

import (
	"errors"
	"net/http"

	"shoal/internal/httpjson"
)

// Client-facing errors. They are *httpjson.Error values, so errors.Is
// matches them by code, also after a forwarded write rebuilt them on the
// node that took the request; the websocket sends the same code and
// message in an error frame.
var (
	ErrInvalidID      = httpjson.BadRequest("invalid_id", "an id is 1 to 256 bytes of UTF-8 without control characters or '*'")
	ErrInvalidPattern = httpjson.BadRequest("invalid_pattern", "a pattern is 1 to 256 bytes of UTF-8 without control characters")
	ErrReservedID     = httpjson.BadRequest("reserved_id", "ids starting with \"shoal:\" are reserved")
	ErrInvalidVersion = httpjson.BadRequest("invalid_version", "a version is a number, an array of numbers, or an object of dependency versions")
	ErrInvalidObject  = httpjson.BadRequest("invalid_object", "an object is a JSON object")
	ErrBadPatch       = httpjson.BadRequest("bad_patch", "a patch is a JSON array of RFC 6902 operations")
	ErrInvalidName    = httpjson.BadRequest("invalid_name", "a dependency name is 1 to 128 bytes of letters, digits, '.', '_' and '-'")
	ErrContentType    = httpjson.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "PATCH takes application/json-patch+json")

	ErrNotFound = httpjson.Errorf(http.StatusNotFound, "object_not_found", "no such object")
	ErrTooLarge = httpjson.Errorf(http.StatusRequestEntityTooLarge, "too_large", "the object is larger than --objectsync-max-size")
	ErrConflict = httpjson.Errorf(http.StatusConflict, "conflict", "another master holds the object")
	// ErrTooManyObjects and ErrTooManyDependencies: creating one would pass
	// the cluster's cap; they carry "limit".
	ErrTooManyObjects      = httpjson.Errorf(http.StatusConflict, "too_many_objects", "the cluster holds as many objects as its limit allows")
	ErrTooManyDependencies = httpjson.Errorf(http.StatusConflict, "too_many_dependencies", "the cluster holds as many dependency counters as its limit allows")
	ErrNotMaster           = httpjson.Errorf(http.StatusConflict, "not_master", "claim the object with a master message first")
	ErrStaleVersion        = httpjson.Errorf(http.StatusConflict, "stale_version", "the version does not follow the current one")
	ErrVersionMoved        = httpjson.Errorf(http.StatusConflict, "version_mismatch", "the patch's from is not the current version")
	ErrPatchFailed         = httpjson.Errorf(http.StatusConflict, "patch_failed", "the patch does not apply to the current object")

	ErrTooManySubscriptions = httpjson.Errorf(http.StatusTooManyRequests, "too_many_subscriptions", "this connection subscribes to as many ids and patterns as it may")
	ErrOverloaded           = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "overloaded", Message: "too many writes wait on this connection"}
	ErrShuttingDown         = httpjson.ErrShuttingDown
)

// State-machine errors: a command that cannot be applied. They are a
// deterministic outcome and leave the state unchanged.
var (
	// ErrUnknownOp: a command with an op this version does not know.
	ErrUnknownOp = errors.New("unknown objectsync command op")
	// ErrMalformedCommand: a command payload that does not decode or
	// breaks a limit.
	ErrMalformedCommand = errors.New("malformed objectsync command")
	// ErrMalformedSnapshot: a snapshot that does not decode or breaks an
	// invariant.
	ErrMalformedSnapshot = errors.New("malformed objectsync snapshot")
)
