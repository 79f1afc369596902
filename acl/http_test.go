package acl

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type httpReply struct {
	status int
	body   []byte
}

func (r httpReply) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func do(t *testing.T, method, url, body string) httpReply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpReply{resp.StatusCode, b}
}

func TestHTTP_Tokens(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	base := srv.URL + "/v1/acl/tokens"

	r := do(t, "POST", base, `{"name":"ci","rules":["kv:write:ci/","cluster:read:*"],"ttl":"720h"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created TokenJSON
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if created.SecretID == "" || !validAccessor(created.AccessorID) || created.Name != "ci" ||
		strings.Join(created.Rules, ",") != "kv:write:ci/,cluster:read:*" ||
		created.Created != testEpoch.Format(time.RFC3339Nano) || created.Expires == nil || *created.Expires != testEpoch.Add(720*time.Hour).Format(time.RFC3339Nano) {
		t.Fatalf("created %+v", created)
	}
	if tok, ok := n.acl.Authenticate(created.SecretID); !ok || tok.AccessorID != created.AccessorID {
		t.Fatal("the secret of the answer does not authenticate")
	}
	if r := do(t, "POST", base, `{"name":"forever","rules":["operator"]}`); r.status != http.StatusCreated || !strings.Contains(string(r.body), `"expires":null`) {
		t.Fatalf("create without ttl: %d %s", r.status, r.body)
	}

	// Reads never show a secret.
	r = do(t, "GET", base, "")
	if r.status != http.StatusOK || bytes.Contains(r.body, []byte(created.SecretID)) || bytes.Contains(r.body, []byte("secret_id")) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var list struct{ Tokens []TokenJSON }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Tokens) != 2 || list.Tokens[0].Name != "ci" || list.Tokens[1].Name != "forever" {
		t.Fatalf("list: %s", r.body)
	}
	r = do(t, "GET", base+"/"+created.AccessorID, "")
	if r.status != http.StatusOK || bytes.Contains(r.body, []byte("secret_id")) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}

	errs := []struct {
		method, url, body string
		status            int
		code              string
	}{
		{"POST", base, `{"name":"ci","rules":["kv:read:*"]}`, 409, "token_name_taken"},
		{"POST", base, `{"name":"x/y","rules":["kv:read:*"]}`, 400, "invalid_name"},
		{"POST", base, `{"name":"x","rules":[]}`, 400, "invalid_rules"},
		{"POST", base, `{"name":"x"}`, 400, "invalid_rules"},
		{"POST", base, `{"name":"x","rules":["kv:read:*","kv:nope:*"]}`, 400, "invalid_rule"},
		{"POST", base, `{"name":"x","rules":["kv:read:*"],"ttl":"soon"}`, 400, "invalid_ttl"},
		{"POST", base, `{"name":"x","rules":["kv:read:*"],"ttl":5}`, 400, "invalid_ttl"},
		{"POST", base, `{"name":"x","rules":["kv:read:*"],"ttl":"-1h"}`, 400, "invalid_ttl"},
		{"POST", base, `{"name":"x","rules":["kv:read:*"],"ttl":"1ms"}`, 400, "invalid_ttl"},
		{"POST", base, `{"name":"x","rules":["kv:read:*"],"secret":"mine"}`, 400, "bad_json"},
		{"POST", base, `not json`, 400, "bad_json"},
		{"GET", base + "/00000000-0000-4000-8000-000000000000", "", 404, "token_not_found"},
		{"GET", base + "/nobody", "", 404, "token_not_found"},
		{"DELETE", base + "/nobody", "", 404, "token_not_found"},
		{"DELETE", base + "/not%20valid", "", 404, "token_not_found"},
	}
	for _, e := range errs {
		r := do(t, e.method, e.url, e.body)
		if r.status != e.status || r.code() != e.code {
			t.Errorf("%s %s %s: %d %s, want %d %s", e.method, e.url, e.body, r.status, r.body, e.status, e.code)
		}
	}
	r = do(t, "POST", base, `{"name":"x","rules":["kv:read:*","kv:read:a*"]}`)
	if !strings.Contains(string(r.body), `"rule":1`) || !strings.Contains(string(r.body), "write \\\"a\\\"") {
		t.Errorf("invalid rule answer lacks its index or reason: %s", r.body)
	}

	// Revoke by accessor, then by name.
	r = do(t, "DELETE", base+"/"+created.AccessorID, "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), created.AccessorID) {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if _, ok := n.acl.Authenticate(created.SecretID); ok {
		t.Fatal("revoked token authenticates")
	}
	if r := do(t, "DELETE", base+"/forever", ""); r.status != http.StatusOK {
		t.Fatalf("revoke by name: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", base, ""); string(bytes.TrimSpace(r.body)) != `{"tokens":[]}` {
		t.Fatalf("list after revokes: %s", r.body)
	}
}
