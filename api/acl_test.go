package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"shoal/internal/testcluster"
)

// newToken creates a scoped token through node url with the bootstrap
// token and returns its secret and accessor id.
func newToken(t *testing.T, url, boot, name string, rules ...string) (secret, accessor string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "rules": rules})
	r := call(t, http.MethodPost, url+"/v1/acl/tokens", string(body), http.Header{"Authorization": {"Bearer " + boot}})
	if r.status != http.StatusCreated {
		t.Fatalf("create token %s: %s", name, r)
	}
	var tok struct {
		Accessor string `json:"accessor_id"`
		Secret   string `json:"secret_id"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.Secret == "" {
		t.Fatalf("create token %s: %s (%v)", name, r, err)
	}
	return tok.Secret, tok.Accessor
}

// Every route family, with no token, a wrong one, a token whose rules do
// not reach the request (another prefix, a weaker action, another
// module), a revoked token and the right one: 401, 401, 403, 401, works.
func TestACL_EveryRouteFamily(t *testing.T) {
	const boot = "bootstrap-secret"
	c := testcluster.New(t, 1, testcluster.WithModules("log", "kv", "locks", "acl"), testcluster.WithToken(boot))
	url := c.Leader().URL()
	bootHeader := http.Header{"Authorization": {"Bearer " + boot}}
	// Things to read.
	for _, setup := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/kv/config/a", "1"},
		{http.MethodPost, "/v1/logs/orders", `{"data":1}`},
		{http.MethodPut, "/v1/semaphores/pool", `{"limit":2}`},
	} {
		if r := call(t, setup.method, url+setup.path, setup.body, bootHeader); r.status >= 300 {
			t.Fatalf("%s %s: %s", setup.method, setup.path, r)
		}
	}
	families := []struct {
		name             string
		method, path     string
		body             string
		allow, notEnough string // a rule that allows the request, one that does not
		accept           string // Accept header (streams)
	}{
		{"kv read", "GET", "/v1/kv/config/a", "", "kv:read:config/", "kv:read:other/", ""},
		{"kv write", "PUT", "/v1/kv/config/b", "2", "kv:write:config/", "kv:read:config/", ""},
		{"kv list", "GET", "/v1/kv?prefix=config/", "", "kv:read:config/", "kv:read:config/a", ""},
		{"log publish", "POST", "/v1/logs/orders", `{"data":2}`, "logs:write:orders", "logs:read:orders", ""},
		{"log read", "GET", "/v1/logs/orders?from=1", "", "logs:read:ord", "kv:read:*", ""},
		{"log configure", "PUT", "/v1/logs/orders", `{"max_entries":100}`, "logs:admin:orders", "logs:write:orders", ""},
		{"semaphore acquire", "POST", "/v1/semaphores/pool/acquire", `{"holder":"h","ttl":"30s"}`, "locks:write:pool", "locks:read:pool", ""},
		{"semaphore create", "PUT", "/v1/semaphores/other", `{"limit":1}`, "locks:admin:*", "locks:write:*", ""},
		{"status", "GET", "/v1/status", "", "cluster:read:*", "kv:admin:*", ""},
		{"metrics", "GET", "/metrics", "", "cluster:read:*", "*:read:x", ""},
		{"raft peers (operator)", "GET", "/v1/raft/peers", "", "operator", "*:admin:*", ""},
		{"acl tokens (operator)", "GET", "/v1/acl/tokens", "", "operator", "cluster:read:*", ""},
		{"log stream", "GET", "/v1/logs/orders/stream?from=1", "", "logs:read:orders", "logs:read:x", "text/event-stream"},
	}
	for i, f := range families {
		t.Run(f.name, func(t *testing.T) {
			good, goodID := newToken(t, url, boot, fmt.Sprintf("good-%d", i), f.allow)
			weak, _ := newToken(t, url, boot, fmt.Sprintf("weak-%d", i), f.notEnough)
			revoked, revokedID := newToken(t, url, boot, fmt.Sprintf("revoked-%d", i), f.allow)
			if r := call(t, http.MethodDelete, url+"/v1/acl/tokens/"+revokedID, "", bootHeader); r.status != http.StatusOK && r.status != http.StatusNoContent {
				t.Fatalf("revoke: %s", r)
			}
			do := func(secret string) response {
				t.Helper()
				h := http.Header{}
				if secret != "" {
					h.Set("Authorization", "Bearer "+secret)
				}
				if f.accept != "" {
					return openStream(t, url+f.path, h)
				}
				return call(t, f.method, url+f.path, f.body, h)
			}
			for _, tc := range []struct {
				who    string
				secret string
				status int
				code   string
			}{
				{"no token", "", 401, "unauthorized"},
				{"a wrong token", "not-a-token", 401, "unauthorized"},
				{"a token of another scope (" + f.notEnough + ")", weak, 403, "forbidden"},
				{"a revoked token", revoked, 401, "unauthorized"},
			} {
				r := do(tc.secret)
				if r.status != tc.status || !strings.Contains(string(r.body), `"`+tc.code+`"`) {
					t.Errorf("%s: got %s, want %d %s", tc.who, r, tc.status, tc.code)
				}
			}
			if r := do(good); r.status >= 300 {
				t.Errorf("the right token (%s, %s): got %s", f.allow, goodID, r)
			}
			if r := do(boot); r.status >= 300 {
				t.Errorf("the bootstrap token: got %s", r)
			}
		})
	}
}

// openStream opens an event stream and returns its status and the start
// of its body (the first 2 KiB, or 2 s of it, whichever comes first).
func openStream(t *testing.T, url string, h http.Header) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header = h.Clone()
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stream %s: %v", url, err)
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode == http.StatusOK {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		body = []byte(line)
	} else {
		body = make([]byte, 2048)
		n, _ := resp.Body.Read(body)
		body = body[:n]
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// A stream opened with a token ends when the token is revoked, and the
// token is refused from then on, on the node that took the revocation
// and on another.
func TestACL_RevokingEndsTheTokensStreams(t *testing.T) {
	const boot = "bootstrap-secret"
	c := testcluster.New(t, 3, testcluster.WithModules("log", "acl"), testcluster.WithToken(boot))
	leader := c.Leader()
	follower := c.Followers()[0]
	bootHeader := http.Header{"Authorization": {"Bearer " + boot}}
	if r := call(t, http.MethodPost, leader.URL()+"/v1/logs/orders", `{"data":1}`, bootHeader); r.status >= 300 {
		t.Fatal(r)
	}
	secret, accessor := newToken(t, leader.URL(), boot, "reader", "logs:read:orders")
	// The follower knows the token once it applied the create.
	testcluster.Eventually(t, 10*time.Second, func() error {
		r := call(t, http.MethodGet, follower.URL()+"/v1/logs/orders?from=1", "", http.Header{"Authorization": {"Bearer " + secret}})
		if r.status != 200 {
			return fmt.Errorf("read on the follower: %s", r)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, follower.URL()+"/v1/logs/orders/stream?from=1&token="+secret, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open the stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data:") {
	}
	if r := call(t, http.MethodDelete, leader.URL()+"/v1/acl/tokens/"+accessor, "", bootHeader); r.status >= 300 {
		t.Fatalf("revoke: %s", r)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for sc.Scan() {
		}
	}()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the revoked token's stream is still open after 20 s")
	}
	for _, n := range c.Nodes() {
		testcluster.Eventually(t, 10*time.Second, func() error {
			r := call(t, http.MethodGet, n.URL()+"/v1/logs/orders?from=1", "", http.Header{"Authorization": {"Bearer " + secret}})
			if r.status != 401 {
				return fmt.Errorf("%s after the revocation: %s", n.Name, r)
			}
			return nil
		})
	}
}

// The web console's login takes a scoped token as well as the bootstrap
// one, and refuses a revoked one.
func TestACL_ConsoleLogin(t *testing.T) {
	const boot = "bootstrap-secret"
	c := testcluster.New(t, 1, testcluster.WithModules("acl"), testcluster.WithToken(boot))
	url := c.Leader().URL()
	login := func(secret string) response {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"token": secret})
		return call(t, http.MethodPost, url+"/ui/login", string(body), http.Header{"Content-Type": {"application/json"}})
	}
	secret, accessor := newToken(t, url, boot, "viewer", "cluster:read:*")
	for _, s := range []string{boot, secret} {
		if r := login(s); r.status != 200 || r.header.Get("Set-Cookie") == "" {
			t.Fatalf("login: %s", r)
		}
	}
	if r := call(t, http.MethodDelete, url+"/v1/acl/tokens/"+accessor, "", http.Header{"Authorization": {"Bearer " + boot}}); r.status >= 300 {
		t.Fatalf("revoke: %s", r)
	}
	wantError(t, login(secret), http.StatusUnauthorized, "wrong_token")
	wantError(t, login("not-a-token"), http.StatusUnauthorized, "wrong_token")
}

// A websocket opened with a scoped token is closed (1008) when the token
// is revoked: the upgraded connection outlives the request, so it watches
// the token's revocation itself.
func TestACL_RevokingClosesTheTokensWebsockets(t *testing.T) {
	const boot = "bootstrap-secret"
	c := testcluster.New(t, 1, testcluster.WithModules("objectsync", "acl"), testcluster.WithToken(boot))
	url := c.Leader().URL()
	secret, accessor := newToken(t, url, boot, "ws", "objects:write:*")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(url, "http://", "ws://", 1)+"/v1/objects/ws?token="+secret,
		&websocket.DialOptions{Subprotocols: []string{"shoal.objects.v1"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	if r := call(t, http.MethodDelete, url+"/v1/acl/tokens/"+accessor, "", http.Header{"Authorization": {"Bearer " + boot}}); r.status >= 300 {
		t.Fatalf("revoke: %s", r)
	}
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue // frames sent before the close
		}
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("the websocket ended with %v, want a 1008 close", err)
		}
		return
	}
}
