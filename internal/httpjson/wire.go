package httpjson

import (
	"encoding/json"
	"fmt"
	"time"
)

// Errors cross from one node to another (a write forwarded to the leader,
// a call to a peer) and must arrive as the same *Error: status, code,
// message, Retry-After and details, so that errors.Is matches a module's
// sentinel on the node that forwarded, and its client gets the same
// answer as from the leader.

// wireError is an *Error on the wire between nodes.
type wireError struct {
	Status       int            `json:"status"`
	Code         string         `json:"code"`
	Message      string         `json:"message"`
	RetryAfterMS int64          `json:"retry_after_ms,omitempty"`
	Details      map[string]any `json:"details,omitempty"`
}

// MarshalError encodes err for another node, as As sees it (an error that
// is not an *Error travels as a generic internal error).
func MarshalError(err error) []byte {
	e := As(err)
	b, mErr := json.Marshal(wireError{Status: e.Status, Code: e.Code, Message: e.Message,
		RetryAfterMS: e.RetryAfter.Milliseconds(), Details: e.Details})
	if mErr != nil { // a detail that does not encode: send the rest
		b, _ = json.Marshal(wireError{Status: e.Status, Code: e.Code, Message: e.Message, RetryAfterMS: e.RetryAfter.Milliseconds()})
	}
	return b
}

// UnmarshalError decodes what MarshalError wrote. It fails on anything
// that is not an error with a status from 400 to 599 and a code.
func UnmarshalError(b []byte) (*Error, error) {
	var w wireError
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decode a peer's error: %w", err)
	}
	if w.Status < 400 || w.Status > 599 || w.Code == "" {
		return nil, fmt.Errorf("decode a peer's error: status %d and code %q", w.Status, w.Code)
	}
	return &Error{Status: w.Status, Code: w.Code, Message: w.Message,
		RetryAfter: time.Duration(w.RetryAfterMS) * time.Millisecond, Details: w.Details}, nil
}

// DecodeError is UnmarshalError for a caller that wants an error value:
// on failure the first result is nil (never a typed nil *Error).
func DecodeError(b []byte) (error, error) {
	e, err := UnmarshalError(b)
	if err != nil {
		return nil, err
	}
	return e, nil
}
