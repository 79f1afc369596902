package locks

import (
	"errors"
	"net/http"

	"shoal/internal/httpjson"
)

// Client-facing errors. They are *httpjson.Error values, so errors.Is
// matches them by code, also after a forwarded write rebuilt them on the
// follower that took the request.
var (
	// ErrInvalidName: a semaphore or lock name is 1-128 bytes of
	// [A-Za-z0-9._-].
	ErrInvalidName = httpjson.BadRequest("invalid_name", "a name is 1 to %d bytes of letters, digits, '.', '_' and '-'", maxNameLen)
	// ErrInvalidHolder: a holder id is 1-256 bytes of UTF-8 without
	// control characters.
	ErrInvalidHolder = httpjson.BadRequest("invalid_holder", "a holder is 1 to %d bytes of UTF-8 text without control characters", maxHolderLen)
	// ErrInvalidLimit: a limit is an integer from 1 to 1,000,000.
	ErrInvalidLimit = httpjson.BadRequest("invalid_limit", "a limit is an integer from 1 to %d", maxLimit)
	// ErrInvalidDuration: a duration field is not a Go duration string
	// such as "15s" or "1m30s"; the error carries "field".
	ErrInvalidDuration = httpjson.BadRequest("invalid_duration", "a duration is a string such as \"15s\" or \"1m30s\"")
	// ErrInvalidTTL: a TTL missing or outside --locks-min-ttl..--locks-max-ttl.
	ErrInvalidTTL = httpjson.BadRequest("invalid_ttl", "the ttl is outside the allowed range")
	// ErrInvalidWait: a negative wait, or one above --locks-max-wait.
	ErrInvalidWait = httpjson.BadRequest("invalid_wait", "the wait is outside the allowed range")
	// ErrInvalidRetry: retries outside 0..1000, or min_wait/max_wait
	// negative, inverted or above --locks-max-wait.
	ErrInvalidRetry = httpjson.BadRequest("invalid_retry", "invalid retries, min_wait or max_wait")
	// ErrInvalidMode: a lock mode other than "read" or "write".
	ErrInvalidMode = httpjson.BadRequest("invalid_mode", "mode is \"read\" or \"write\"")
	// ErrInvalidParameter: a malformed query parameter; carries "parameter".
	ErrInvalidParameter = httpjson.BadRequest("invalid_parameter", "invalid query parameter")

	// ErrNotFound: no semaphore has that name.
	ErrNotFound = httpjson.Errorf(http.StatusNotFound, "semaphore_not_found", "no such semaphore")
	// ErrNotHolder: the holder holds no slot (never did, released, or
	// expired). A release or renew answering this means the lease is lost.
	ErrNotHolder = httpjson.Errorf(http.StatusNotFound, "not_holder", "the holder does not hold a slot")
	// ErrLimitConflict: the semaphore exists with another limit (PUT
	// without ?update, or an acquire's create_limit); carries "limit".
	ErrLimitConflict = httpjson.Errorf(http.StatusConflict, "limit_conflict", "the semaphore exists with a different limit")
	// ErrTooManySemaphores and ErrTooManyLocks: creating one would pass
	// the cluster's cap (--locks-max-semaphores, --locks-max-locks); they
	// carry "limit".
	ErrTooManySemaphores = httpjson.Errorf(http.StatusConflict, "too_many_semaphores", "the cluster holds as many semaphores as its limit allows")
	ErrTooManyLocks      = httpjson.Errorf(http.StatusConflict, "too_many_locks", "the cluster holds as many locks as its limit allows")
	// ErrFull: every slot is taken and none freed up within the wait.
	ErrFull = httpjson.Errorf(http.StatusConflict, "semaphore_full", "the semaphore is full")
	// ErrLockBusy: the lock is held in a conflicting mode (or a writer
	// waits) and did not free up within the wait.
	ErrLockBusy = httpjson.Errorf(http.StatusConflict, "lock_busy", "the lock is held in a conflicting mode")
	// ErrModeConflict: the holder already holds or waits for the lock in
	// the other mode; release it first.
	ErrModeConflict = httpjson.Errorf(http.StatusConflict, "mode_conflict", "the holder holds the lock in the other mode")
	// ErrQueueFull: too many blocking acquires wait on one name.
	ErrQueueFull = httpjson.Errorf(http.StatusConflict, "queue_full", "too many waiters")
	// ErrSuperseded: a newer blocking acquire of the same holder took over
	// this one's place in the queue.
	ErrSuperseded = httpjson.Errorf(http.StatusConflict, "superseded", "a newer acquire of the same holder replaced this one")
	// ErrDeleted: the semaphore was deleted while the acquire waited.
	ErrDeleted = httpjson.Errorf(http.StatusGone, "semaphore_deleted", "the semaphore was deleted while waiting")
	// ErrShuttingDown: this node stopped while the request waited; no slot
	// is held on its behalf.
	ErrShuttingDown = httpjson.ErrShuttingDown
)

// State-machine errors: a command that cannot be applied. They are a
// deterministic outcome (every node rejects the same command the same way)
// and leave the state unchanged.
var (
	// ErrUnknownOp: a command with an op this version does not know; a
	// mixed-version cluster reports it instead of silently diverging.
	ErrUnknownOp = errors.New("unknown locks command op")
	// ErrMalformedCommand: a command payload (or result) that does not
	// decode or breaks a limit.
	ErrMalformedCommand = errors.New("malformed locks command")
	// ErrMalformedSnapshot: a snapshot that does not decode or breaks an
	// invariant.
	ErrMalformedSnapshot = errors.New("malformed locks snapshot")
)

// busyError is the "not acquired" error of a kind.
func busyError(k kind) *httpjson.Error {
	if k == kindLock {
		return ErrLockBusy
	}
	return ErrFull
}
