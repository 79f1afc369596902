package replication

import (
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"syscall"
	"time"

	"shoal/internal/httpjson"
)

// Client-facing errors. They are *httpjson.Error values, so errors.Is
// matches them by code, also after a forwarded write rebuilt them on the
// follower that took the request.
var (
	// ErrInvalidPath: a path that is empty, absolute, has an empty, "." or
	// ".." component, a NUL or control character, is not UTF-8, is longer
	// than maxPathLen, or names the module's reserved directory.
	ErrInvalidPath = httpjson.BadRequest("invalid_path", "a path is 1 to %d bytes of UTF-8, relative, without '.', '..' or empty components and without control characters", maxPathLen)
	// ErrInvalidParameter: a malformed query parameter.
	ErrInvalidParameter = httpjson.BadRequest("invalid_parameter", "invalid query parameter")
	// ErrNotFound: no file has that path on this node.
	ErrNotFound = httpjson.Errorf(http.StatusNotFound, "file_not_found", "no such file")
	// ErrNotAFile: the path names a directory or a special file.
	ErrNotAFile = httpjson.Errorf(http.StatusConflict, "not_a_file", "the path names a directory or a special file")
	// ErrTooLarge: a replace whose content cannot travel in one frame.
	ErrTooLarge = httpjson.Errorf(http.StatusRequestEntityTooLarge, "file_too_large", "the content is larger than one replication frame")
	// ErrNotDurable: the write is on the leader's disk but not enough
	// followers acknowledged it within --replication-ack-timeout. It is not
	// reported durable; it may or may not survive a failover.
	ErrNotDurable = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "not_durable",
		Message: "the write is on the leader's disk but was not acknowledged by enough followers in time", RetryAfter: time.Second}
	// ErrNoLeader: no replication leader is known, or it is not ready.
	ErrNoLeader = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "no_replication_leader",
		Message: "no replication leader is ready", RetryAfter: time.Second}
	// ErrNotInSync: no live member of the in-sync set can lead
	// replication (a claim for a node outside the set is refused with it
	// too): no node that surely holds every acknowledged write is alive.
	ErrNotInSync = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "not_in_sync",
		Message: "no live member of the in-sync set can lead replication", RetryAfter: time.Second}
	// ErrLeadershipLost: this node stopped leading while the write waited;
	// the write may or may not be durable.
	ErrLeadershipLost = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "leadership_lost",
		Message: "the replication leader stepped down while the write waited; its outcome is unknown", RetryAfter: time.Second}
	// ErrOutcomeUnknown: the write was forwarded and no answer came.
	ErrOutcomeUnknown = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "outcome_unknown",
		Message: "the write was forwarded to the leader and no answer came; it may or may not be applied", RetryAfter: time.Second}
	// ErrShuttingDown: the node is stopping.
	ErrShuttingDown = httpjson.ErrShuttingDown
)

// Errors of the stream protocol and the state machine.
var (
	// ErrBadFrame is wrapped by every error decoding a stream frame.
	ErrBadFrame = errors.New("bad replication frame")
	// ErrBadHeader: the stream did not start with this version's header.
	ErrBadHeader = errors.New("bad replication stream header")
	// ErrProtocol: a well-formed frame that breaks the protocol (out of
	// order, unexpected, or inconsistent with the local copy).
	ErrProtocol = errors.New("replication protocol violation")
	// ErrChecksumMismatch: a transferred file's SHA-256 is not the one the
	// leader announced.
	ErrChecksumMismatch = errors.New("replicated file checksum mismatch")
	// ErrUnknownOp: a Raft command with an op this version does not know.
	ErrUnknownOp = errors.New("unknown replication command op")
	// ErrMalformedCommand: a Raft command payload that does not decode.
	ErrMalformedCommand = errors.New("malformed replication command")
	// ErrMalformedSnapshot: a snapshot that does not decode.
	ErrMalformedSnapshot = errors.New("malformed replication snapshot")
)

// clientPathError maps the failure of a file operation on the client path
// p to the client's error: not found, not a regular file, or a path that
// leads out of the directory (os.Root refuses it); anything else is kept.
func clientPathError(p string, err error) error {
	var pe *fs.PathError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotFound.WithMessage("no file %q on this node", p)
	case errors.Is(err, errNotRegular):
		return ErrNotAFile.WithMessage("%q is a directory or a special file", p)
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, fs.ErrExist):
		return ErrNotAFile.WithMessage("%q or one of its parents is not what the write needs (a file where a directory is, or the reverse)", p)
	case errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes"):
		return ErrInvalidPath.WithMessage("%q leads out of the replicated directory through a symbolic link", p)
	}
	return err
}
