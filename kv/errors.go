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
	// ErrWatchOverflow ends a watch stream whose client read too slowly to
	// keep up with the changes; it is sent as an "error" event.
	ErrWatchOverflow = httpjson.Errorf(http.StatusServiceUnavailable, "watch_overflow", "the watch fell behind the changes and was closed; reconnect and re-read")
)

// Internal errors, never shown to clients.
var (
	// ErrMalformedMessage: a gossip message that does not decode.
	ErrMalformedMessage = errors.New("malformed kv message")
	// ErrMalformedRecord: a stored record that does not decode.
	ErrMalformedRecord = errors.New("malformed kv record")
)
