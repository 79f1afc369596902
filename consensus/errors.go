package consensus

import (
	"net/http"
	"time"

	"shoal/internal/httpjson"
)

// Errors returned by Node. They are *httpjson.Error so that they keep their
// meaning when a forwarded write fails on the leader.
var (
	// ErrNoLeader: no leader is known (election under way, or no quorum).
	// The command was not submitted; retrying later is safe.
	ErrNoLeader = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "no_leader",
		Message: "the cluster has no leader right now; retry shortly", RetryAfter: time.Second}
	// ErrNotLeader: the node asked is not the leader (only seen by callers
	// that must not be forwarded). The command was not submitted.
	ErrNotLeader = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "not_leader",
		Message: "this node is not the leader", RetryAfter: time.Second}
	// ErrLeadershipLost: the leader lost leadership while the command was in
	// flight; it may or may not have been committed. Retry only if the
	// command is idempotent (a log publish with an id is).
	ErrLeadershipLost = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "leadership_lost",
		Message: "leadership changed while the write was in flight; its outcome is unknown", RetryAfter: time.Second}
	// ErrShutdown: Raft on this node is stopping or stopped.
	ErrShutdown = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "shutting_down",
		Message: "this node is shutting down", RetryAfter: time.Second}
	// ErrUndeclaredCommand: a command whose tag or op no module of the
	// leader declares. It was refused before it reached the log.
	ErrUndeclaredCommand = httpjson.Errorf(http.StatusBadRequest, "undeclared_command",
		"the command belongs to no module operation the leader runs")
	// ErrUnknownModule: a snapshot holds state of a module this node does
	// not run.
	ErrUnknownModule = httpjson.Errorf(http.StatusInternalServerError, "unknown_module",
		"the state belongs to a raft module this node does not run")
	// ErrHalted: this node's state machine stopped applying commands (it
	// found one of a module it does not run); see FSM.Halted.
	ErrHalted = httpjson.Errorf(http.StatusServiceUnavailable, "state_machine_halted",
		"this node stopped applying commands")
	// ErrTimeout: the command could not be submitted in time.
	ErrTimeout = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "raft_timeout",
		Message: "the write could not be submitted to the leader in time", RetryAfter: time.Second}
)
