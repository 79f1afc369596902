package consensus

import "fmt"

// Error is a failure of the consensus layer: a stable snake_case code that
// programs match on, a sentence for people, and its kind. consensus does
// not speak HTTP: the API layer turns the kind into a status (httpjson.As:
// unavailable → 503 with Retry-After, invalid → 400, internal → 500).
//
// Two errors are the same for errors.Is when their codes match, whatever
// their types: an Error sent to another node comes back as the API's error
// type with the same code, and still matches the sentinel here.
type Error struct {
	Code    string
	Message string
	Kind    ErrorKind
}

// ErrorKind says what a caller can do about an Error.
type ErrorKind string

// The kinds of Error.
const (
	// KindUnavailable: the condition passes (an election, a shutdown);
	// the same call may succeed later.
	KindUnavailable ErrorKind = "unavailable"
	// KindInvalid: the request itself is wrong; repeating it fails again.
	KindInvalid ErrorKind = "invalid"
	// KindInternal: this node cannot serve it (its state needs an
	// operator).
	KindInternal ErrorKind = "internal"
)

func (e *Error) Error() string { return e.Message }

// ErrorCode returns e's code (the method other layers match on).
func (e *Error) ErrorCode() string { return e.Code }

// ErrorKind returns e's kind as a string: "unavailable", "invalid" or
// "internal".
func (e *Error) ErrorKind() string { return string(e.Kind) }

// Is reports whether target carries the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(interface{ ErrorCode() string })
	return ok && t.ErrorCode() == e.Code
}

// WithMessage returns a copy of e with a more specific message, keeping
// its code and kind (and so its identity for errors.Is).
func (e *Error) WithMessage(format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

func unavailable(code, message string) *Error {
	return &Error{Code: code, Message: message, Kind: KindUnavailable}
}

// Errors returned by Node.
var (
	// ErrNoLeader: no leader is known (election under way, or no quorum).
	// The command was not submitted; retrying later is safe.
	ErrNoLeader = unavailable("no_leader", "the cluster has no leader right now; retry shortly")
	// ErrNotLeader: the node asked is not the leader (only seen by callers
	// that must not be forwarded). The command was not submitted.
	ErrNotLeader = unavailable("not_leader", "this node is not the leader")
	// ErrLeaderUnreachable: the leader is known but the request to it
	// could not be delivered. Retrying is safe.
	ErrLeaderUnreachable = unavailable("leader_unreachable", "the leader could not be reached; retry shortly")
	// ErrLeadershipLost: the leader lost leadership while the command was in
	// flight; it may or may not have been committed. Retry only if the
	// command is idempotent (a log publish with an id is).
	ErrLeadershipLost = unavailable("leadership_lost", "leadership changed while the write was in flight; its outcome is unknown")
	// ErrOutcomeUnknown: the caller stopped waiting (its context ended, or
	// the leader changed) after the write was handed on; it may or may not
	// be committed.
	ErrOutcomeUnknown = unavailable("outcome_unknown", "the write was sent to the leader but no answer came in time; its outcome is unknown")
	// ErrShutdown: Raft on this node is stopping or stopped.
	ErrShutdown = unavailable("shutting_down", "this node is shutting down")
	// ErrHalted: this node's state machine stopped applying commands (it
	// found one of a module it does not run); see FSM.Halted.
	ErrHalted = unavailable("state_machine_halted", "this node stopped applying commands")
	// ErrTimeout: the command could not be submitted in time.
	ErrTimeout = unavailable("raft_timeout", "the write could not be submitted to the leader in time")
	// ErrUndeclaredCommand: a command whose tag or op no module of the
	// leader declares. It was refused before it reached the log.
	ErrUndeclaredCommand = &Error{Code: "undeclared_command", Kind: KindInvalid,
		Message: "the command belongs to no module operation the leader runs"}
	// ErrUnknownModule: a snapshot holds state of a module this node does
	// not run.
	ErrUnknownModule = &Error{Code: "unknown_module", Kind: KindInternal,
		Message: "the state belongs to a raft module this node does not run"}
)
