package kv

import (
	"errors"
	"net/http"

	"shoal/internal/httpjson"
)

// Client-facing errors. They are *httpjson.Error values, so errors.Is
// matches them by code, also after the client rebuilt them from JSON.
var (
	// ErrInvalidKey: a key is 1 to 512 bytes of UTF-8 without control
	// characters.
	ErrInvalidKey = httpjson.BadRequest("invalid_key", "a key is 1 to %d bytes of UTF-8 without control characters", MaxKeyLen)
	// ErrInvalidValue: a value must be valid UTF-8 text.
	ErrInvalidValue = httpjson.BadRequest("invalid_value", "a value must be valid UTF-8 text")
	// ErrValueTooLarge: a value above --kv-max-value; it carries "limit".
	ErrValueTooLarge = httpjson.Errorf(http.StatusRequestEntityTooLarge, "value_too_large", "the value is larger than the limit")
	// ErrKeyNotFound: the key has no live value on this node (never
	// written, deleted, or not arrived yet).
	ErrKeyNotFound = httpjson.Errorf(http.StatusNotFound, "key_not_found", "no such key")
	// ErrInvalidParameter: a malformed query parameter; it carries
	// "parameter".
	ErrInvalidParameter = httpjson.BadRequest("invalid_parameter", "invalid query parameter")
	// ErrUnknownParameter: a query parameter the route does not take; it
	// carries "parameter" and "accepted". A typo (?cas=1, ?tll=30s) would
	// otherwise do something other than what was asked.
	ErrUnknownParameter = httpjson.BadRequest("unknown_parameter", "unknown query parameter")
	// ErrInvalidPrecondition: a malformed If-Match or If-None-Match; it
	// carries "header".
	ErrInvalidPrecondition = httpjson.BadRequest("invalid_precondition", "invalid conditional header")
	// ErrPreconditionFailed: If-Match or If-None-Match did not hold for
	// this node's copy of the key; it carries "current_version" and
	// "current_etag" when the key has a value here.
	ErrPreconditionFailed = httpjson.Errorf(http.StatusPreconditionFailed, "precondition_failed", "the precondition does not hold on this node")
	// ErrWatchOverflow ends a watch stream whose client read too slowly to
	// keep up with the changes; it is sent as a "stream_error" event. The
	// client may resume with Last-Event-ID.
	ErrWatchOverflow = httpjson.Errorf(http.StatusServiceUnavailable, "watch_overflow", "the watch fell behind the changes and was closed; reconnect with Last-Event-ID to resume")
)

// Internal errors, never shown to clients.
var (
	// ErrMalformedMessage: a gossip message that does not decode.
	ErrMalformedMessage = errors.New("malformed kv message")
	// ErrMalformedRecord: a stored record that does not decode.
	ErrMalformedRecord = errors.New("malformed kv record")
)
