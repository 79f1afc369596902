package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// HandlerFunc is an HTTP handler that returns its failure instead of
// writing it; Handle turns it into an http.HandlerFunc.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h: a returned error is written with WriteError. A handler
// that already wrote a response must return nil.
func Handle(h HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, err)
		}
	}
}

// loggerKey is the context key of the logger WriteError reports internal
// errors to; the API sets it per request so that per-node loggers are used.
type loggerKey struct{}

// WithLogger returns a request whose context carries logger, used by
// WriteError to report internal errors, with attrs (such as the request
// id) added to that report.
func WithLogger(r *http.Request, logger *slog.Logger, attrs ...any) *http.Request {
	return r.WithContext(contextWithLogger(r.Context(), logger, attrs))
}

// WriteError writes err in the JSON error shape with its status (see As).
// Internal errors are logged with the request's logger, never sent.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := As(err)
	if e.Status >= 500 && e.Code == "internal" {
		loggerFrom(r.Context()).Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.RetryAfter > 0 {
		secs := int(e.RetryAfter.Seconds())
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	WriteJSON(w, e.Status, e.Body())
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client is gone if this fails; nothing left to tell it
}

// DecodeJSON reads exactly one JSON value from the request body into v,
// rejecting unknown fields and trailing data. Errors are *Error: 400
// bad_json for malformed input, 413 for a body over the limit set by the
// API's body-size middleware.
func DecodeJSON(r *http.Request, v any) error {
	return Decode(r.Body, v)
}

// Decode is DecodeJSON for any reader. Beyond what encoding/json checks
// it refuses, as 400 bad_json, input encoding/json would quietly change:
// invalid UTF-8 (which it replaces with U+FFFD) and numbers outside
// float64's range (which a json.RawMessage would keep, to fail later).
func Decode(body io.Reader, v any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return decodeError(err)
	}
	if !utf8.Valid(data) {
		return ErrBadJSON.WithMessage("request body is not valid UTF-8 at byte %d", invalidUTF8At(data))
	}
	if err := checkNumbers(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return ErrBadJSON.WithMessage("request body has data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrBadJSON.WithMessage("request body has data after the JSON value")
	}
	return nil
}

// invalidUTF8At returns the offset of the first invalid UTF-8 sequence.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// checkNumbers refuses a JSON number that does not fit a float64 (1e999).
// Only an exponent or a run of more than 300 digits can overflow, so input
// without either is not walked.
func checkNumbers(data []byte) error {
	if !bytes.ContainsAny(data, "eE") && len(data) < 300 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // malformed input: Decode says where
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := strconv.ParseFloat(string(n), 64); err != nil {
				return ErrBadJSON.WithMessage("number %s is outside the range of a 64-bit float", truncate(string(n), 32))
			}
		}
	}
}

// truncate cuts s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func decodeError(err error) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var e *Error
	switch {
	case errors.As(err, &e):
		return e // a reader's own answer (the body timed out, say)
	case errors.As(err, &tooLarge):
		return As(err)
	case errors.Is(err, io.EOF):
		return ErrBadJSON.WithMessage("request body is empty; a JSON value is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ErrBadJSON.WithMessage("request body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return ErrBadJSON.WithMessage("request body is not valid JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return ErrBadJSON.WithMessage("field %q must be of type %s", typeErr.Field, typeErr.Type)
		}
		return ErrBadJSON.WithMessage("request body must be a JSON %s", typeErr.Type)
	default:
		return ErrBadJSON.WithMessage("request body is not acceptable JSON: %s", err.Error())
	}
}

// ReadError turns an error response body written by WriteError back into
// an *Error with the given status. A body that is not in the error shape
// yields a generic error naming the status.
func ReadError(status int, body []byte) *Error {
	var wire struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	e := &Error{Status: status, Code: "http_" + strconv.Itoa(status), Message: fmt.Sprintf("request failed with status %d", status)}
	if json.Unmarshal(body, &wire) != nil || wire.Error == nil {
		return e
	}
	for k, raw := range wire.Error {
		switch k {
		case "code":
			_ = json.Unmarshal(raw, &e.Code)
		case "message":
			_ = json.Unmarshal(raw, &e.Message)
		default:
			var v any
			if json.Unmarshal(raw, &v) == nil {
				if e.Details == nil {
					e.Details = map[string]any{}
				}
				e.Details[k] = v
			}
		}
	}
	return e
}
