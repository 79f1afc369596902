package httpjson

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is a client-facing error: an HTTP status, a stable snake_case code
// that programs match on, and a human sentence.
//
// Two *Error values are the same error for errors.Is when their codes match,
// so a sentinel such as locks.ErrFull still matches after the error was
// serialised by the leader and rebuilt on the follower that forwarded the
// write.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header: the client
	// may succeed if it tries again after that long (no leader, shutting down).
	RetryAfter time.Duration
	// Details are extra fields written beside code and message (for example
	// the first index of a trimmed log).
	Details map[string]any
}

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Message }

// ErrorCode returns e's code.
func (e *Error) ErrorCode() string { return e.Code }

// Is reports whether target carries the same code: an *Error, or an error
// of a layer that does not speak HTTP (coded), such as consensus.ErrNoLeader
// after it crossed from one node to another.
func (e *Error) Is(target error) bool {
	t, ok := target.(interface{ ErrorCode() string })
	return ok && t.ErrorCode() == e.Code
}

// coded is an error of a layer that does not know HTTP (consensus): a
// code, a sentence, and a kind As maps to a status.
type coded interface {
	error
	ErrorCode() string
	// ErrorKind is "unavailable" (503, Retry-After: the condition passes),
	// "invalid" (400) or "internal" (500).
	ErrorKind() string
}

// fromCoded gives a coded error its status.
func fromCoded(c coded) *Error {
	e := &Error{Code: c.ErrorCode(), Message: c.Error()}
	switch c.ErrorKind() {
	case "unavailable":
		e.Status, e.RetryAfter = http.StatusServiceUnavailable, time.Second
	case "invalid":
		e.Status = http.StatusBadRequest
	default:
		e.Status = http.StatusInternalServerError
	}
	return e
}

// WithMessage returns a copy of e with a more specific message, keeping its
// status and code (and so its identity for errors.Is).
func (e *Error) WithMessage(format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

// WithDetail returns a copy of e carrying one more detail field.
func (e *Error) WithDetail(key string, value any) *Error {
	c := *e
	c.Details = make(map[string]any, len(e.Details)+1)
	for k, v := range e.Details {
		c.Details[k] = v
	}
	c.Details[key] = value
	return &c
}

// Body returns e in the API's error shape, {"error":{"code":..,"message":..}}
// with its details beside code and message. WriteError sends it as the
// response; an event stream, whose status is already sent, sends it as the
// data of an error event.
func (e *Error) Body() map[string]any {
	body := make(map[string]any, len(e.Details)+2)
	for k, v := range e.Details {
		body[k] = v
	}
	// Written last: a detail must never replace the code programs match on.
	body["code"], body["message"] = e.Code, e.Message
	return map[string]any{"error": body}
}

// Common errors. Packages define their own sentinels with Errorf next to the
// code that returns them; these are the ones shared by the whole API.
var (
	ErrNotFound        = Errorf(http.StatusNotFound, "not_found", "no such resource")
	ErrMethod          = Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this resource")
	ErrUnauthorized    = Errorf(http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
	ErrBodyTooLarge    = Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is too large")
	ErrBadJSON         = Errorf(http.StatusBadRequest, "bad_json", "request body is not valid JSON")
	ErrShuttingDown    = &Error{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: "this node is shutting down", RetryAfter: time.Second}
	ErrRequestTimedOut = Errorf(http.StatusGatewayTimeout, "timeout", "the request did not complete in time")
	// ErrBodyTimeout: the client sent its request body too slowly.
	ErrBodyTimeout = Errorf(http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time")
	// ErrCanceled: the client went away (or the node is stopping) before
	// the request completed. The client will rarely see it.
	ErrCanceled = &Error{Status: http.StatusServiceUnavailable, Code: "canceled", Message: "the request was canceled before it completed", RetryAfter: time.Second}
)

// BadRequest returns a 400 error with the given code and message.
func BadRequest(code, format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, code, format, args...)
}

// As converts any error into an *Error: an *Error anywhere in the chain is
// returned as is; a coded error (consensus) gets the status of its kind; a
// body-size error becomes 413; a context deadline becomes
// 504; anything else is an internal error whose message is kept generic so
// internals do not leak (the caller logs the original).
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var c coded
	if errors.As(err, &c) {
		return fromCoded(c)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return ErrBodyTooLarge.WithMessage("request body is larger than the limit of %d bytes", tooLarge.Limit)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrRequestTimedOut
	}
	if errors.Is(err, context.Canceled) {
		return ErrCanceled
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
}
