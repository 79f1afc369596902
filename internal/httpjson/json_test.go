package httpjson_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"shoal/internal/httpjson"
)

// joinRequest is a small request body like the API's own.
type joinRequest struct {
	Addrs []string `json:"addrs"`
	N     int      `json:"n"`
	Inner struct {
		On bool `json:"on"`
	} `json:"inner"`
}

func TestDecodeJSON_Cases(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode string // "" means success
		wantMsg  string // substring of the message
	}{
		{"object", `{"addrs":["a:1","b:2"],"n":2,"inner":{"on":true}}`, "", ""},
		{"surrounding whitespace", " \n\t{\"n\":1}\r\n ", "", ""},
		{"null", `null`, "", ""},
		{"empty", ``, "bad_json", "empty"},
		{"only whitespace", " \n\t ", "bad_json", "empty"},
		{"second value", `{"n":1}{"n":2}`, "bad_json", "data after the JSON value"},
		{"second value after space", `{"n":1} {}`, "bad_json", "data after the JSON value"},
		{"trailing garbage", `{"n":1}x`, "bad_json", "data after the JSON value"},
		{"trailing closing brace", `{"n":1}}`, "bad_json", "data after the JSON value"},
		{"trailing closing bracket", `{"n":1}]`, "bad_json", "data after the JSON value"},
		{"trailing comma", `{"n":1},`, "bad_json", "data after the JSON value"},
		{"trailing number", `{"n":1} 2`, "bad_json", "data after the JSON value"},
		{"unknown field", `{"addrs":[],"nope":1}`, "bad_json", `unknown field "nope"`},
		{"unknown nested field", `{"inner":{"off":true}}`, "bad_json", `unknown field "off"`},
		{"type error", `{"n":"two"}`, "bad_json", `field "n" must be of type int`},
		{"nested type error", `{"inner":{"on":1}}`, "bad_json", `field "inner.on" must be of type bool`},
		{"element type error", `{"addrs":[1]}`, "bad_json", `field "addrs" must be of type string`},
		{"top-level type error", `[1,2]`, "bad_json", "request body must be a JSON"},
		{"top-level string", `"x"`, "bad_json", "request body must be a JSON"},
		{"truncated", `{"n":1`, "bad_json", "ends in the middle"},
		{"truncated string", `{"addrs":["a`, "bad_json", "ends in the middle"},
		{"syntax error", `{n:1}`, "bad_json", "not valid JSON at byte 2"},
		{"bare word", `hello`, "bad_json", "not valid JSON"},
		{"overflow", `{"n":1e400}`, "bad_json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/cluster/join", strings.NewReader(tt.body))
			var v joinRequest
			err := httpjson.DecodeJSON(r, &v)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var e *httpjson.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T %v, want an *httpjson.Error", err, err)
			}
			if e.Status != http.StatusBadRequest || e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Fatalf("got %d %q %q, want 400 %q containing %q", e.Status, e.Code, e.Message, tt.wantCode, tt.wantMsg)
			}
			if !errors.Is(err, httpjson.ErrBadJSON) {
				t.Fatalf("got %v, want it to match ErrBadJSON", err)
			}
		})
	}
}

func TestDecodeJSON_Values(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"addrs":["a:1","b:2"],"n":2,"inner":{"on":true}}`))
	var v joinRequest
	if err := httpjson.DecodeJSON(r, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Addrs) != 2 || v.Addrs[0] != "a:1" || v.Addrs[1] != "b:2" || v.N != 2 || !v.Inner.On {
		t.Fatalf("got %+v, want the body's values", v)
	}
}

func TestDecodeJSON_TooLarge(t *testing.T) {
	const limit = 64
	value := `{"addrs":["` + strings.Repeat("a", limit-len(`{"addrs":[""]}`)) + `"]}` // exactly limit bytes
	if len(value) != limit {
		t.Fatalf("bad fixture: %d bytes", len(value))
	}
	tests := []struct {
		name     string
		body     string
		wantCode string
	}{
		{"exactly at the limit", value, ""},
		{"value over the limit", `{"addrs":["` + strings.Repeat("a", 2*limit) + `"]}`, "body_too_large"},
		{"value fits, trailing space over the limit", value + strings.Repeat(" ", limit), "body_too_large"},
		{"value fits, one byte over", value + " ", "body_too_large"},
		{"value fits, trailing data over the limit", value + strings.Repeat("x", limit), "body_too_large"},
		// The body is read whole (to check its UTF-8 and numbers) before
		// it is parsed: over the limit is 413 whatever it holds.
		{"syntax error, over the limit", `{"addrs":[x` + strings.Repeat(" ", 2*limit), "body_too_large"},
		{"syntax error within the limit", `{"addrs":[x` + strings.Repeat(" ", limit/2), "bad_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			r.Body = http.MaxBytesReader(rec, r.Body, limit)
			var v joinRequest
			err := httpjson.DecodeJSON(r, &v)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var e *httpjson.Error
			if !errors.As(err, &e) || e.Code != tt.wantCode {
				t.Fatalf("got %v, want code %q", err, tt.wantCode)
			}
			if tt.wantCode == "body_too_large" {
				if e.Status != http.StatusRequestEntityTooLarge || !strings.Contains(e.Message, "64 bytes") {
					t.Fatalf("got %d %q, want 413 naming the limit", e.Status, e.Message)
				}
				if !errors.Is(err, httpjson.ErrBodyTooLarge) {
					t.Fatalf("got %v, want it to match ErrBodyTooLarge", err)
				}
			}
		})
	}
}

func TestDecode_RefusesWhatEncodingJSONWouldQuietlyChange(t *testing.T) {
	type body struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	for name, tc := range map[string]struct {
		in string
		ok bool
	}{
		"plain":                       {`{"id":"a","data":{"n":1.5e10,"s":"é"}}`, true},
		"invalid UTF-8 in a string":   {"{\"id\":\"a\xff\",\"data\":1}", false},
		"invalid UTF-8 in raw data":   {"{\"id\":\"a\",\"data\":\"\xc3\"}", false},
		"a number beyond float64":     {`{"id":"a","data":1e999}`, false},
		"deep in raw data":            {`{"id":"a","data":{"x":[1,2,-1E400]}}`, false},
		"a long but finite number":    {`{"id":"a","data":` + strings.Repeat("9", 200) + `}`, true},
		"310 digits overflow float64": {`{"id":"a","data":` + strings.Repeat("9", 310) + `}`, false},
		"smallest subnormal is fine":  {`{"id":"a","data":5e-324}`, true},
	} {
		var b body
		err := httpjson.Decode(strings.NewReader(tc.in), &b)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !tc.ok && !errors.Is(err, httpjson.ErrBadJSON) {
			t.Errorf("%s: got %v, want bad_json", name, err)
		}
	}
}
