package console_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"shoal/console"
	"shoal/internal/testcluster"

	_ "shoal/modules/all"
)

// testToken is the cluster's API token in these tests; it has bytes a
// cookie value cannot hold as they are.
const testToken = "console test token; \"quoted\", 1"

// TestConsole_Cluster runs the console on a real 3-node cluster with a
// token: the API path over plain HTTP, then every page in headless
// Chromium (skipped when no browser is installed).
func TestConsole_Cluster(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithToken(testToken))
	lead := c.Leader()
	api := newAPIClient(t)
	t.Run("http", func(t *testing.T) { testHTTP(t, api, lead) })
	t.Run("browser", func(t *testing.T) { testBrowser(t, c, api, lead) })
}

// apiClient calls nodes' APIs with the token, as a program would.
type apiClient struct {
	t  testing.TB
	hc *http.Client
}

func newAPIClient(t testing.TB) *apiClient {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{t: t, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// do sends a request with the given headers (the token's unless auth is
// set to something else, or "-" for none) and returns status and body.
func (a *apiClient) do(method, url, body string, header map[string]string) (int, []byte) {
	a.t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	resp, err := a.hc.Do(r)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must sends a request that must answer 2xx and decodes its JSON into v
// (if v is not nil).
func (a *apiClient) must(method, url, body string, v any) {
	a.t.Helper()
	code, out := a.do(method, url, body, nil)
	if code/100 != 2 {
		a.t.Fatalf("%s %s: got %d %s", method, url, code, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, url, out, err)
		}
	}
}

func codeOf(body []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// testHTTP checks the console's path through the real API: the token
// check behind /ui/api, the cookie, cross-origin protection in front of
// it, and the routes next to it.
func testHTTP(t *testing.T, a *apiClient, n *testcluster.Node) {
	base := n.URL()
	noAuth := map[string]string{"Authorization": ""}

	if code, body := a.do("GET", base+"/ui/", "", noAuth); code != 200 || !bytes.Contains(body, []byte("<main")) {
		t.Fatalf("GET /ui/ without a token: got %d, want the page", code)
	}
	if code, body := a.do("GET", base+"/ui/api/v1/status", "", noAuth); code != 401 || codeOf(body) != "unauthorized" {
		t.Fatalf("GET /ui/api/v1/status without a cookie: got %d %s, want 401 unauthorized", code, body)
	}
	code, body := a.do("POST", base+"/ui/login", `{"token":"wrong"}`, map[string]string{"Authorization": "", "Content-Type": "application/json"})
	if code != 401 || codeOf(body) != "wrong_token" {
		t.Fatalf("login with a wrong token: got %d %s, want 401 wrong_token", code, body)
	}
	good, _ := json.Marshal(map[string]string{"token": testToken})
	req, _ := http.NewRequest("POST", base+"/ui/login", bytes.NewReader(good))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("login with the token: got %d %v, want 200 and a cookie", resp.StatusCode, resp.Cookies())
	}
	ck := resp.Cookies()[0]
	if ck.Path != "/ui/" || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v: want Path=/ui/, HttpOnly, SameSite=Strict", ck)
	}
	withCookie := func(extra map[string]string) map[string]string {
		h := map[string]string{"Authorization": "", "Cookie": ck.Name + "=" + ck.Value}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	code, body = a.do("GET", base+"/ui/api/v1/status", "", withCookie(nil))
	var st struct{ Node string }
	if err := json.Unmarshal(body, &st); code != 200 || err != nil || st.Node != n.Name {
		t.Fatalf("GET /ui/api/v1/status with the cookie: got %d %s, want %s's status", code, body, n.Name)
	}
	forged := console.CookieName + "=" + base64.RawURLEncoding.EncodeToString([]byte("wrong"))
	if code, body := a.do("GET", base+"/ui/api/v1/status", "", map[string]string{"Authorization": "", "Cookie": forged}); code != 401 {
		t.Fatalf("GET /ui/api/v1/status with a forged cookie: got %d %s, want 401", code, body)
	}
	if code, body := a.do("GET", base+"/ui/api/metrics", "", withCookie(nil)); code != 200 || !bytes.Contains(body, []byte("shoal_http_requests_total")) {
		t.Fatalf("GET /ui/api/metrics with the cookie: got %d, want the metrics", code)
	}
	// A write from another site through the console path is refused by
	// the API's cross-origin protection, cookie or not.
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}} {
		if code, body := a.do("PUT", base+"/ui/api/v1/kv/console/x", "v", withCookie(h)); code != 403 || codeOf(body) != "origin_not_allowed" {
			t.Fatalf("cross-site PUT through /ui/api (%v): got %d %s, want 403 origin_not_allowed", h, code, body)
		}
	}
	if code, body := a.do("PUT", base+"/ui/api/v1/kv/console/x", "v", withCookie(map[string]string{"Sec-Fetch-Site": "same-origin"})); code != 200 {
		t.Fatalf("same-origin PUT through /ui/api: got %d %s, want 200", code, body)
	}
	if code, body := a.do("GET", base+"/ui/nothing", "", noAuth); code != 404 || codeOf(body) != "not_found" {
		t.Fatalf("GET /ui/nothing: got %d %s, want 404 not_found", code, body)
	}
	if code, _ := a.do("GET", base+"/ui/objects", "", noAuth); code != 200 {
		t.Fatalf("GET /ui/objects (objectsync's viewer): got %d, want 200", code)
	}
}

// unique returns a value no earlier run wrote.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }
