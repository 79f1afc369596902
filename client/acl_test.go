package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
)

// newACLNode starts a real one-node cluster with the acl module and
// returns it with a client for it.
func newACLNode(t *testing.T) (*testcluster.Cluster, *client.Client) {
	t.Helper()
	c := testcluster.New(t, 1, testcluster.WithModules("acl"))
	return c, newClient(t, c.Leader().URL())
}

func TestACLClient_Tokens(t *testing.T) {
	c, cl := newACLNode(t)
	ctx := context.Background()

	before := time.Now().Add(-time.Minute)
	ci, err := cl.CreateToken(ctx, client.TokenRequest{Name: "ci", Rules: []string{"kv:write:config/", "logs:read:*"}, TTL: 720 * time.Hour})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if ci.SecretID == "" || ci.AccessorID == "" || ci.Name != "ci" || !slices.Equal(ci.Rules, []string{"kv:write:config/", "logs:read:*"}) ||
		ci.Created.Before(before) || ci.Expires == nil || !ci.Expires.Equal(ci.Created.Add(720*time.Hour)) {
		t.Fatalf("created %+v (expires %v)", ci, ci.Expires)
	}
	op, err := cl.CreateToken(ctx, client.TokenRequest{Name: "admin", Rules: []string{"operator"}})
	if err != nil {
		t.Fatalf("create without ttl: %v", err)
	}
	if op.Expires != nil || op.SecretID == "" || op.SecretID == ci.SecretID {
		t.Fatalf("created %+v, want no expiry and a secret of its own", op)
	}

	list, err := cl.Tokens(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 2 || !reflect.DeepEqual(list[0], op.Token) || !reflect.DeepEqual(list[1], ci.Token) {
		t.Fatalf("got list %+v, want [%+v %+v] in name order", list, op.Token, ci.Token)
	}

	for _, id := range []string{ci.AccessorID, "ci"} {
		got, err := cl.Token(ctx, id)
		if err != nil || !reflect.DeepEqual(got, ci.Token) {
			t.Fatalf("read %q: got %+v, %v; want %+v", id, got, err, ci.Token)
		}
	}

	// The types mirror the API's JSON: what the node answered decodes and
	// encodes back to the same document, and a read has no secret.
	raw := getBody(t, c.Leader().URL()+"/v1/acl/tokens/"+ci.AccessorID)
	if strings.Contains(raw, "secret_id") || strings.Contains(raw, ci.SecretID) {
		t.Fatalf("a read shows the secret: %s", raw)
	}
	var tok client.Token
	if err := json.Unmarshal([]byte(raw), &tok); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, tok, raw)
	raw = getBody(t, c.Leader().URL()+"/v1/acl/tokens/admin")
	if !strings.Contains(raw, `"expires":null`) {
		t.Fatalf("a token without ttl: %s", raw)
	}
	if err := json.Unmarshal([]byte(raw), &tok); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, tok, raw)

	if err := cl.RevokeToken(ctx, "ci"); err != nil {
		t.Fatalf("revoke by name: %v", err)
	}
	if err := cl.RevokeToken(ctx, op.AccessorID); err != nil {
		t.Fatalf("revoke by accessor: %v", err)
	}
	if _, err := cl.Token(ctx, ci.AccessorID); !errors.Is(err, client.ErrTokenNotFound) {
		t.Fatalf("read a revoked token: %v", err)
	}
	if err := cl.RevokeToken(ctx, op.AccessorID); !errors.Is(err, client.ErrTokenNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	var e *client.Error
	if !errors.As(cl.RevokeToken(ctx, "ci"), &e) || e.Status != http.StatusNotFound {
		t.Fatalf("revoke an unknown name: %v, want a 404 *client.Error", e)
	}
	if list, err = cl.Tokens(ctx); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("list after revoking all: %#v, %v; want an empty list", list, err)
	}
}

func TestACLClient_Errors(t *testing.T) {
	_, cl := newACLNode(t)
	ctx := context.Background()
	if _, err := cl.CreateToken(ctx, client.TokenRequest{Name: "ci", Rules: []string{"kv:read:*"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    client.TokenRequest
		want   error
		status int
		msg    string
	}{
		{"bad rule", client.TokenRequest{Name: "x", Rules: []string{"kv:read:*", "kv:frob:config/"}}, client.ErrInvalidRule, 400, `unknown action "frob"`},
		{"star inside a pattern", client.TokenRequest{Name: "x", Rules: []string{"kv:read:config/*"}}, client.ErrInvalidRule, 400, `write "config/"`},
		{"no rules", client.TokenRequest{Name: "x"}, client.ErrInvalidRules, 400, "1 to 64 rules"},
		{"bad name", client.TokenRequest{Name: "a b", Rules: []string{"operator"}}, client.ErrInvalidName, 400, "invalid token name"},
		{"negative ttl", client.TokenRequest{Name: "x", Rules: []string{"operator"}, TTL: -time.Hour}, client.ErrInvalidTTL, 400, "positive"},
		{"ttl below 1s", client.TokenRequest{Name: "x", Rules: []string{"operator"}, TTL: time.Millisecond}, client.ErrInvalidTTL, 400, "1s"},
		{"name taken", client.TokenRequest{Name: "ci", Rules: []string{"operator"}}, client.ErrTokenNameTaken, 409, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cl.CreateToken(ctx, tt.req)
			var e *client.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Status != tt.status || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v (%#v), want %v, status %d, a message with %q", err, e, tt.want, tt.status, tt.msg)
			}
		})
	}
	for _, id := range []string{"", ".", "..", "nope", "00000000-0000-4000-8000-000000000000"} {
		if _, err := cl.Token(ctx, id); !errors.Is(err, client.ErrTokenNotFound) {
			t.Errorf("read %q: got %v, want ErrTokenNotFound", id, err)
		}
		if err := cl.RevokeToken(ctx, id); !errors.Is(err, client.ErrTokenNotFound) {
			t.Errorf("revoke %q: got %v, want ErrTokenNotFound", id, err)
		}
	}
}

func TestTokenRequest_JSON(t *testing.T) {
	tests := []struct {
		req  client.TokenRequest
		want string
	}{
		{client.TokenRequest{Name: "ci", Rules: []string{"kv:write:config/"}, TTL: 720 * time.Hour}, `{"name":"ci","rules":["kv:write:config/"],"ttl":"720h0m0s"}`},
		{client.TokenRequest{Name: "ops", Rules: []string{"operator"}}, `{"name":"ops","rules":["operator"]}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.req)
		if err != nil || string(b) != tt.want {
			t.Fatalf("got %s, %v; want %s", b, err, tt.want)
		}
		var back client.TokenRequest
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, tt.req) {
			t.Fatalf("got %+v, %v; want %+v", back, err, tt.req)
		}
	}
	var r client.TokenRequest
	if err := json.Unmarshal([]byte(`{"name":"x","rules":[],"ttl":"soon"}`), &r); err == nil {
		t.Fatal("a ttl that is not a duration decoded")
	}
}

// getBody returns the body of a 200 answer to GET url.
func getBody(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true // no idle connection outlives the test
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

// assertSameJSON fails unless v encodes to the same JSON document as raw
// (the same members and values, in any order).
func assertSameJSON(t *testing.T, v any, raw string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("encodes to %s, the node answered %s", b, raw)
	}
}
