package logstream

import (
	"errors"
	"net/http"
	"time"

	"shoal/internal/httpjson"
)

// Client-facing errors. They are *httpjson.Error values, so errors.Is
// matches them by code, also after a forwarded write rebuilt them.
var (
	// ErrInvalidLogName: a log name is 1-128 bytes of [A-Za-z0-9._-].
	ErrInvalidLogName = httpjson.BadRequest("invalid_log_name", "a log name is 1 to %d bytes of letters, digits, '.', '_' and '-'", maxNameLen)
	// ErrLogNotFound: no entry was ever published to the log.
	ErrLogNotFound = httpjson.Errorf(http.StatusNotFound, "log_not_found", "no such log")
	// ErrTooManyLogs: creating the log would pass the cluster's cap on
	// logs (--log-max-logs); it carries "limit".
	ErrTooManyLogs = httpjson.Errorf(http.StatusConflict, "too_many_logs", "the cluster holds as many logs as its limit allows")
	// ErrLogTrimmed: the requested index is below the first retained one;
	// the error carries "first_index".
	ErrLogTrimmed = httpjson.Errorf(http.StatusGone, "log_trimmed", "the requested entries were trimmed by retention")
	// ErrMissingData: an entry without a "data" member.
	ErrMissingData = httpjson.BadRequest("missing_data", "an entry needs a \"data\" member")
	// ErrInvalidID: an entry id longer than 256 bytes.
	ErrInvalidID = httpjson.BadRequest("invalid_id", "an entry id is at most %d bytes", maxIDLen)
	// ErrInvalidBatch: a batch with no or too many entries, or a body that
	// mixes "entries" with a single "id"/"data".
	ErrInvalidBatch = httpjson.BadRequest("invalid_batch", "a batch holds 1 to %d entries", maxBatch)
	// ErrInvalidLimits: a PUT body with a limit out of range or a bad
	// duration.
	ErrInvalidLimits = httpjson.BadRequest("invalid_limits", "invalid retention limits")
	// ErrLogUnavailable: the log's files are gone on this node while it
	// replays the deletion after a restart.
	ErrLogUnavailable = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "log_unavailable", Message: "the log cannot be read on this node now", RetryAfter: time.Second}
	// ErrInvalidParameter: a malformed query parameter or Last-Event-ID
	// header; the error carries "parameter".
	ErrInvalidParameter = httpjson.BadRequest("invalid_parameter", "invalid query parameter")
)

// State-machine errors: a command that cannot be applied. They are a
// deterministic outcome (every node rejects the same command the same way)
// and leave the state unchanged.
var (
	// ErrUnknownOp: a command with an op this version does not know; a
	// mixed-version cluster reports it instead of silently diverging.
	ErrUnknownOp = errors.New("unknown log command op")
	// ErrMalformedCommand: a command payload that does not decode or
	// breaks a limit (name, id length, batch size, invalid JSON data).
	ErrMalformedCommand = errors.New("malformed log command")
	// ErrSnapshotFiles: a snapshot whose segment files this node does not
	// have and could fetch from no other node.
	ErrSnapshotFiles = errors.New("log snapshot files unavailable")
	// ErrMalformedSnapshot: a snapshot that does not decode.
	ErrMalformedSnapshot = errors.New("malformed log snapshot")
)
