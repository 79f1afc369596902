package httpjson_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
)

func TestError_IsByCode(t *testing.T) {
	full := httpjson.Errorf(http.StatusConflict, "full", "semaphore %q is full", "s1")
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same value", full, full, true},
		{"same code, other message and status", httpjson.Errorf(http.StatusTeapot, "full", "x"), full, true},
		{"copy with a new message", full.WithMessage("other words"), full, true},
		{"copy with a detail", full.WithDetail("holder", "n1"), full, true},
		{"wrapped with %w", fmt.Errorf("acquire: %w", full), full, true},
		{"rebuilt from the wire", httpjson.ReadError(409, []byte(`{"error":{"code":"full","message":"m"}}`)), full, true},
		{"other code", httpjson.Errorf(http.StatusConflict, "empty", "x"), full, false},
		{"not an *Error", errors.New("full"), full, false},
		{"target not an *Error", full, errors.New("full"), false},
		{"sentinels differ", httpjson.ErrNotFound, httpjson.ErrMethod, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Fatalf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
			}
		})
	}
}

func TestError_CopiesDoNotAlias(t *testing.T) {
	base := httpjson.Errorf(http.StatusBadRequest, "bad", "base").WithDetail("a", 1)
	msg := base.WithMessage("changed %d", 2)
	det := base.WithDetail("b", 2)
	if base.Message != "base" || msg.Message != "changed 2" {
		t.Fatalf("got messages %q and %q, want %q and %q", base.Message, msg.Message, "base", "changed 2")
	}
	if msg.Status != base.Status || msg.Code != base.Code {
		t.Fatalf("WithMessage changed status/code: got %d %q, want %d %q", msg.Status, msg.Code, base.Status, base.Code)
	}
	if _, ok := base.Details["b"]; ok {
		t.Fatalf("WithDetail modified the original's details: %v", base.Details)
	}
	if want := map[string]any{"a": 1, "b": 2}; !reflect.DeepEqual(det.Details, want) {
		t.Fatalf("got details %v, want %v", det.Details, want)
	}
	if base.Error() != "base" {
		t.Fatalf("got Error() %q, want %q", base.Error(), "base")
	}
}

func TestAs_Mapping(t *testing.T) {
	custom := &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "no_leader", Message: "m", RetryAfter: time.Second}
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string // substring
		same       bool   // the very *Error in the chain comes back
	}{
		{"*Error as is", custom, 503, "no_leader", "m", true},
		{"wrapped *Error", fmt.Errorf("apply: %w", custom), 503, "no_leader", "m", true},
		{"joined *Error", errors.Join(errors.New("first"), custom), 503, "no_leader", "m", true},
		{"MaxBytesError", &http.MaxBytesError{Limit: 1024}, 413, "body_too_large", "1024", false},
		{"wrapped MaxBytesError", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 7}), 413, "body_too_large", "limit of 7 bytes", false},
		{"deadline", context.DeadlineExceeded, 504, "timeout", "did not complete", false},
		{"wrapped deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), 504, "timeout", "did not complete", false},
		{"unknown", errors.New("open /secret/path: permission denied"), 500, "internal", "internal error", false},
		{"canceled", context.Canceled, 503, "canceled", "canceled", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := httpjson.As(tt.err)
			if e.Status != tt.wantStatus || e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Fatalf("got %d %q %q, want %d %q containing %q", e.Status, e.Code, e.Message, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if tt.same && e != custom {
				t.Fatalf("got a copy %p, want the *Error in the chain %p", e, custom)
			}
			if e.Code == "internal" && strings.Contains(e.Message, "secret") {
				t.Fatalf("internal error leaks its cause: %q", e.Message)
			}
		})
	}
}

// recorded runs WriteError on a fresh recorder and returns it with the
// decoded body.
func recorded(t *testing.T, r *http.Request, err error) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	httpjson.WriteError(rec, r, err)
	var body map[string]any
	if jerr := json.Unmarshal(rec.Body.Bytes(), &body); jerr != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), jerr)
	}
	return rec, body
}

func TestWriteError_Shape(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantRetry  string
		wantError  map[string]any
	}{
		{
			name:       "plain",
			err:        httpjson.ErrNotFound.WithMessage("no log %q", "orders"),
			wantStatus: 404,
			wantError:  map[string]any{"code": "not_found", "message": `no log "orders"`},
		},
		{
			name:       "retry after whole seconds",
			err:        &httpjson.Error{Status: 503, Code: "no_leader", Message: "m", RetryAfter: 3 * time.Second},
			wantStatus: 503,
			wantRetry:  "3",
			wantError:  map[string]any{"code": "no_leader", "message": "m"},
		},
		{
			name:       "retry after below a second rounds up to one",
			err:        &httpjson.Error{Status: 503, Code: "busy", Message: "m", RetryAfter: 200 * time.Millisecond},
			wantStatus: 503,
			wantRetry:  "1",
			wantError:  map[string]any{"code": "busy", "message": "m"},
		},
		{
			name:       "details beside code and message",
			err:        httpjson.Errorf(410, "trimmed", "gone").WithDetail("first_index", 50).WithDetail("checks", map[string]string{"leader": "none"}),
			wantStatus: 410,
			wantError: map[string]any{"code": "trimmed", "message": "gone", "first_index": float64(50),
				"checks": map[string]any{"leader": "none"}},
		},
		{
			name:       "details never replace code or message",
			err:        httpjson.Errorf(409, "conflict", "real message").WithDetail("code", "spoofed").WithDetail("message", "spoofed"),
			wantStatus: 409,
			wantError:  map[string]any{"code": "conflict", "message": "real message"},
		},
		{
			name:       "internal error stays generic",
			err:        errors.New("dial tcp 10.0.0.1:7481: secret"),
			wantStatus: 500,
			wantError:  map[string]any{"code": "internal", "message": "internal error"},
		},
		{
			name:       "escapes no HTML",
			err:        httpjson.BadRequest("bad", "<a> & <b>"),
			wantStatus: 400,
			wantError:  map[string]any{"code": "bad", "message": "<a> & <b>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httpjson.WithLogger(httptest.NewRequest(http.MethodGet, "/v1/x", nil), slog.New(slog.DiscardHandler))
			rec, body := recorded(t, r, tt.err)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("got Content-Type %q, want application/json", ct)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Fatalf("got Retry-After %q, want %q", got, tt.wantRetry)
			}
			if len(body) != 1 {
				t.Fatalf("got top-level keys %v, want only \"error\"", body)
			}
			if !reflect.DeepEqual(body["error"], tt.wantError) {
				t.Fatalf("got error object %v, want %v", body["error"], tt.wantError)
			}
			if strings.Contains(rec.Body.String(), `\u003c`) {
				t.Fatalf("HTML was escaped: %s", rec.Body.String())
			}
		})
	}
}

func TestWriteError_LogsInternalErrorsOnly(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantLog bool
	}{
		{"internal", errors.New("disk on fire"), true},
		{"client error", httpjson.ErrNotFound, false},
		{"service unavailable", &httpjson.Error{Status: 503, Code: "no_leader", Message: "m"}, false},
		{"timeout", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			r := httpjson.WithLogger(httptest.NewRequest(http.MethodPost, "/v1/logs/x", nil), logger)
			rec, _ := recorded(t, r, tt.err)
			logged := buf.String()
			if (logged != "") != tt.wantLog {
				t.Fatalf("got log %q, want logged=%v", logged, tt.wantLog)
			}
			if tt.wantLog {
				if !strings.Contains(logged, "disk on fire") || !strings.Contains(logged, "/v1/logs/x") {
					t.Fatalf("log %q lacks the cause or the path", logged)
				}
				if strings.Contains(rec.Body.String(), "disk on fire") {
					t.Fatalf("response leaks the cause: %s", rec.Body.String())
				}
			}
		})
	}
}

func TestHandle_WritesReturnedError(t *testing.T) {
	tests := []struct {
		name       string
		h          httpjson.HandlerFunc
		wantStatus int
		wantBody   string
	}{
		{
			name: "success",
			h: func(w http.ResponseWriter, r *http.Request) error {
				httpjson.WriteJSON(w, http.StatusCreated, map[string]any{"ok": true})
				return nil
			},
			wantStatus: 201,
			wantBody:   `{"ok":true}` + "\n",
		},
		{
			name: "error",
			h: func(w http.ResponseWriter, r *http.Request) error {
				return fmt.Errorf("lookup: %w", httpjson.ErrNotFound)
			},
			wantStatus: 404,
			wantBody:   `{"error":{"code":"not_found","message":"no such resource"}}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpjson.Handle(tt.h)(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestReadError_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  *httpjson.Error
	}{
		{"plain", httpjson.Errorf(404, "log_not_found", `log "orders" does not exist`)},
		{"details", httpjson.Errorf(410, "trimmed", "gone").WithDetail("first_index", float64(50)).WithDetail("checks", map[string]any{"leader": "none"})},
		{"unicode and quotes", httpjson.BadRequest("bad_json", "field \"é\" <must> be \n a string")},
		{"empty message", httpjson.Errorf(409, "conflict", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpjson.WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), tt.err)
			got := httpjson.ReadError(rec.Code, rec.Body.Bytes())
			if got.Status != tt.err.Status || got.Code != tt.err.Code || got.Message != tt.err.Message {
				t.Fatalf("got %d %q %q, want %d %q %q", got.Status, got.Code, got.Message, tt.err.Status, tt.err.Code, tt.err.Message)
			}
			if !reflect.DeepEqual(got.Details, tt.err.Details) {
				t.Fatalf("got details %#v, want %#v", got.Details, tt.err.Details)
			}
			if !errors.Is(got, tt.err) {
				t.Fatalf("rebuilt error does not match the original for errors.Is")
			}
		})
	}
}

func TestReadError_NotTheErrorShape(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode string
		wantMsg  string
	}{
		{"empty", 502, "", "http_502", "request failed with status 502"},
		{"html", 502, "<html><body>Bad Gateway</body></html>", "http_502", "request failed with status 502"},
		{"plain text", 500, "internal server error\n", "http_500", "request failed with status 500"},
		{"other JSON", 404, `{"message":"nope"}`, "http_404", "request failed with status 404"},
		{"error is a string", 400, `{"error":"bad"}`, "http_400", "request failed with status 400"},
		{"error is null", 400, `{"error":null}`, "http_400", "request failed with status 400"},
		{"JSON array", 400, `[1,2]`, "http_400", "request failed with status 400"},
		{"truncated", 503, `{"error":{"code":"no_le`, "http_503", "request failed with status 503"},
		{"code of the wrong type", 409, `{"error":{"code":7,"message":"m"}}`, "http_409", "m"},
		{"message only", 409, `{"error":{"message":"m"}}`, "http_409", "m"},
		{"code only", 409, `{"error":{"code":"c"}}`, "c", "request failed with status 409"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := httpjson.ReadError(tt.status, []byte(tt.body))
			if got.Status != tt.status || got.Code != tt.wantCode || got.Message != tt.wantMsg {
				t.Fatalf("got %d %q %q, want %d %q %q", got.Status, got.Code, got.Message, tt.status, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// codedErr is an error of a layer that does not speak HTTP, as consensus's.
type codedErr struct{ code, kind string }

func (e codedErr) Error() string     { return "coded " + e.code }
func (e codedErr) ErrorCode() string { return e.code }
func (e codedErr) ErrorKind() string { return e.kind }

func TestAs_GivesCodedErrorsTheStatusOfTheirKind(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		status int
		retry  time.Duration
	}{
		{"unavailable", http.StatusServiceUnavailable, time.Second},
		{"invalid", http.StatusBadRequest, 0},
		{"internal", http.StatusInternalServerError, 0},
		{"something new", http.StatusInternalServerError, 0},
	} {
		c := codedErr{code: "no_leader", kind: tc.kind}
		e := httpjson.As(fmt.Errorf("wrapped: %w", c))
		if e.Status != tc.status || e.RetryAfter != tc.retry || e.Code != "no_leader" || e.Message != "coded no_leader" {
			t.Errorf("%s: got %+v, want status %d, Retry-After %v, its code and message", tc.kind, e, tc.status, tc.retry)
		}
		// Across nodes it becomes an *Error that still matches the
		// original by code.
		back, err := httpjson.UnmarshalError(httpjson.MarshalError(c))
		if err != nil || !errors.Is(back, c) || errors.Is(back, codedErr{code: "other"}) {
			t.Errorf("%s: after a round trip: %v, %v", tc.kind, back, err)
		}
	}
}
