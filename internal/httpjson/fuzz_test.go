package httpjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"shoal/internal/httpjson"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain
// go test. Regenerate them with:
//
//	go test ./internal/httpjson -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// fuzzLimit is the body limit FuzzDecode reads through, so that the 413
// path is fuzzed too.
const fuzzLimit = 96

func decodeSeeds() [][]byte {
	return [][]byte{
		[]byte(`{"addrs":["127.0.0.1:7482","10.0.0.2:7482"],"n":3,"inner":{"on":true}}`),
		[]byte(" {\"n\" : -0 } \n"),
		[]byte(`null`),
		[]byte(``),
		[]byte(`{"n":1}{"n":2}`),
		[]byte(`{"n":1}]`),
		[]byte(`{"nope":1}`),
		[]byte(`{"n":"x","inner":{"on":1}}`),
		[]byte(`[{"n":1}]`),
		[]byte("{\"addrs\":[\"\\ud800\\u00e9\xff\"]}"), // lone surrogate escape, invalid UTF-8
		[]byte(`{"n":1e400}`),
		[]byte(`{"addrs":["` + strings.Repeat("a", fuzzLimit) + `"]}`),
		[]byte(`{"n":1}` + strings.Repeat(" ", fuzzLimit)),
		[]byte(`{"inner":{"on":tru`),
	}
}

// FuzzDecode checks that Decode never panics, fails only with a 400
// bad_json or (past the limit) a 413, and accepts only bodies that are one
// valid JSON value within the limit.
func FuzzDecode(f *testing.F) {
	for _, seed := range decodeSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Body = http.MaxBytesReader(rec, r.Body, fuzzLimit)
		var v joinRequest
		err := httpjson.DecodeJSON(r, &v)
		if err == nil {
			if !json.Valid(body) {
				t.Fatalf("accepted a body that is not one JSON value: %q", body)
			}
			if len(body) > fuzzLimit {
				t.Fatalf("accepted %d bytes past the limit of %d", len(body), fuzzLimit)
			}
			return
		}
		var e *httpjson.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T %v is not an *httpjson.Error", err, err)
		}
		switch {
		case e.Status == http.StatusBadRequest && e.Code == "bad_json":
		case e.Status == http.StatusRequestEntityTooLarge && e.Code == "body_too_large":
			if len(body) <= fuzzLimit {
				t.Fatalf("413 for %d bytes within the limit of %d", len(body), fuzzLimit)
			}
		default:
			t.Fatalf("got %d %q %q, want 400 bad_json or 413 body_too_large", e.Status, e.Code, e.Message)
		}
		if e.Message == "" {
			t.Fatalf("empty message for %q", body)
		}
	})
}

type readErrorSeed struct {
	status int
	body   []byte
}

func readErrorSeeds() []readErrorSeed {
	return []readErrorSeed{
		{404, []byte(`{"error":{"code":"log_not_found","message":"log \"orders\" does not exist"}}`)},
		{410, []byte(`{"error":{"code":"log_trimmed","message":"gone","first_index":50}}`)},
		{503, []byte(`{"error":{"code":"not_ready","message":"m","checks":{"leader":"no raft leader is known"}}}`)},
		{502, []byte(`<html>Bad Gateway</html>`)},
		{500, []byte(``)},
		{400, []byte(`{"error":"bad"}`)},
		{400, []byte(`{"error":null}`)},
		{409, []byte(`{"error":{"code":7,"message":null,"x":1e400,"y":[true,null,"\ud800"]}}`)},
		{409, []byte(`{"error":{"code":"a","code":"b","Code":"c"}}`)},
		{0, []byte(`{"ERROR":{"code":"protocol"}}`)},
		{-1, []byte(`{"error":{"code":"x"}} trailing`)},
	}
}

// FuzzReadError checks that ReadError never panics, keeps the status, and
// that what it returns survives WriteError and ReadError again unchanged
// (the forwarding hop: the leader writes, the follower reads, and the
// follower writes it again to its client).
func FuzzReadError(f *testing.F) {
	for _, seed := range readErrorSeeds() {
		f.Add(seed.status, seed.body)
	}
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := httpjson.ReadError(status, body)
		if e == nil || e.Status != status {
			t.Fatalf("got %+v, want status %d", e, status)
		}
		// A status a server can send, to write it again.
		if status < 0 {
			status = -(status + 1)
		}
		e.Status = 400 + status%200
		rec := httptest.NewRecorder()
		httpjson.WriteError(rec, httpjson.WithLogger(httptest.NewRequest(http.MethodGet, "/", nil), quiet), e)
		if rec.Code != e.Status {
			t.Fatalf("wrote status %d, want %d", rec.Code, e.Status)
		}
		again := httpjson.ReadError(rec.Code, rec.Body.Bytes())
		if again.Code != e.Code || again.Message != e.Message {
			t.Fatalf("round trip changed %q %q into %q %q (wire %s)", e.Code, e.Message, again.Code, again.Message, rec.Body.Bytes())
		}
		if len(e.Details) != len(again.Details) || (len(e.Details) > 0 && !reflect.DeepEqual(e.Details, again.Details)) {
			t.Fatalf("round trip changed details %#v into %#v", e.Details, again.Details)
		}
		if !errors.Is(again, e) {
			t.Fatalf("the rebuilt error does not match for errors.Is")
		}
	})
}

func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	write := func(fuzz string, i int, values ...string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, seed := range decodeSeeds() {
		write("FuzzDecode", i, fmt.Sprintf("[]byte(%q)", seed))
	}
	for i, seed := range readErrorSeeds() {
		write("FuzzReadError", i, fmt.Sprintf("int(%d)", seed.status), fmt.Sprintf("[]byte(%q)", seed.body))
	}
}
