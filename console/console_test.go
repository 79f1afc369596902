package console_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"shoal/console"
	"shoal/internal/httpjson"
)

// newHandler is the console as the api package mounts it: its routes on
// a chi router whose unknown paths answer in the JSON error shape, Wrap in
// front, and next standing in for the API.
func newHandler(t *testing.T, token string, next http.HandlerFunc) http.Handler {
	t.Helper()
	c, err := console.New(console.Config{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.NotFound(httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error { return httpjson.ErrNotFound }))
	c.Routes(r)
	if next != nil {
		r.Handle("/v1/*", next)
	}
	return c.Wrap(r)
}

func do(t *testing.T, h http.Handler, r *http.Request) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

// errorCode decodes a JSON error body's code.
func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct {
		Error struct {
			Code, Message string
		} `json:"error"`
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q, want application/json", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	return body.Error.Code
}

func TestConsole_AssetsContentTypes(t *testing.T) {
	h := newHandler(t, "", nil)
	tests := []struct{ path, ctype, contains string }{
		{"/ui/", "text/html; charset=utf-8", `<main id="main"`},
		{"/ui/assets/app.js", "text/javascript; charset=utf-8", "import"},
		{"/ui/assets/lib.js", "text/javascript; charset=utf-8", "export"},
		{"/ui/assets/chart.js", "text/javascript; charset=utf-8", "export"},
		{"/ui/assets/console.css", "text/css; charset=utf-8", ":focus-visible"},
		{"/ui/assets/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, page := range []string{"cluster", "logs", "kv", "locks", "objects", "files"} {
		tests = append(tests, struct{ path, ctype, contains string }{"/ui/assets/pages/" + page + ".js", "text/javascript; charset=utf-8", "export function mount"})
	}
	for _, tt := range tests {
		resp := do(t, h, httptest.NewRequest(http.MethodGet, tt.path, nil))
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: got status %d, want 200", tt.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tt.ctype {
			t.Errorf("GET %s: got Content-Type %q, want %q", tt.path, got, tt.ctype)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: got X-Content-Type-Options %q, want nosniff", tt.path, got)
		}
		if !strings.Contains(string(body), tt.contains) {
			t.Errorf("GET %s: body does not contain %q", tt.path, tt.contains)
		}
	}
	resp := do(t, h, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("got Content-Security-Policy %q, want script-src 'self' and frame-ancestors 'none'", csp)
	}
	resp = do(t, h, httptest.NewRequest(http.MethodGet, "/ui", nil))
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: got %d to %q, want 301 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestConsole_UnknownAssetIs404JSON(t *testing.T) {
	h := newHandler(t, "", nil)
	for _, p := range []string{"/ui/assets/nope.js", "/ui/assets/index.html", "/ui/assets/", "/ui/assets/pages", "/ui/assets/doc.go", "/ui/assets/..%2fconsole.go"} {
		resp := do(t, h, httptest.NewRequest(http.MethodGet, p, nil))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", p, resp.StatusCode)
			continue
		}
		if code := errorCode(t, resp); code != "asset_not_found" {
			t.Errorf("GET %s: got code %q, want asset_not_found", p, code)
		}
	}
	resp := do(t, h, httptest.NewRequest(http.MethodGet, "/ui/nothing-here", nil))
	if resp.StatusCode != http.StatusNotFound || errorCode(t, resp) != "not_found" {
		t.Errorf("GET /ui/nothing-here: got %d, want 404 not_found", resp.StatusCode)
	}
}

func login(t *testing.T, h http.Handler, token string, tls bool) *http.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"token": token})
	r := httptest.NewRequest(http.MethodPost, "/ui/login", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	if tls {
		r.TLS = &tlsState
	}
	return do(t, h, r)
}

var tlsState tls.ConnectionState

func TestConsole_LoginCookie(t *testing.T) {
	const token = `s3cret token; with "odd" bytes,`
	h := newHandler(t, token, nil)

	resp := login(t, h, "wrong", false)
	if resp.StatusCode != http.StatusUnauthorized || errorCode(t, resp) != "wrong_token" {
		t.Fatalf("wrong token: got %d, want 401 wrong_token", resp.StatusCode)
	}
	if len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: got cookies %v, want none", resp.Cookies())
	}
	if resp := login(t, h, "", false); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("empty token: got %d, want 401", resp.StatusCode)
	}

	for _, overTLS := range []bool{false, true} {
		resp = login(t, h, token, overTLS)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("right token: got %d, want 200", resp.StatusCode)
		}
		cs := resp.Cookies()
		if len(cs) != 1 {
			t.Fatalf("right token: got cookies %v, want one", cs)
		}
		c := cs[0]
		if c.Name != console.CookieName || c.Path != "/ui/" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != overTLS || c.MaxAge != 0 {
			t.Fatalf("cookie %+v: want %s, Path=/ui/, HttpOnly, SameSite=Strict, Secure=%v, a session cookie", c, console.CookieName, overTLS)
		}
		if strings.Contains(resp.Header.Get("Set-Cookie"), "s3cret") {
			t.Fatalf("the cookie holds the token as it is, want it encoded: %s", resp.Header.Get("Set-Cookie"))
		}

		// The session reports the cookie as valid.
		r := httptest.NewRequest(http.MethodGet, "/ui/session", nil)
		r.AddCookie(c)
		raw, _ := io.ReadAll(do(t, h, r).Body)
		if !strings.Contains(string(raw), `"auth_required":true`) || !strings.Contains(string(raw), `"authenticated":true`) {
			t.Fatalf("session with the cookie: got %s, want auth_required and authenticated", raw)
		}
	}

	// Without the cookie, the session is not authenticated.
	raw, _ := io.ReadAll(do(t, h, httptest.NewRequest(http.MethodGet, "/ui/session", nil)).Body)
	if !strings.Contains(string(raw), `"authenticated":false`) {
		t.Fatalf("session without a cookie: got %s, want authenticated false", raw)
	}

	// Logging out removes the cookie.
	resp = do(t, h, httptest.NewRequest(http.MethodPost, "/ui/logout", nil))
	cs := resp.Cookies()
	if resp.StatusCode != http.StatusOK || len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Path != "/ui/" || cs[0].Value != "" {
		t.Fatalf("logout: got %d %v, want 200 and an expired cookie on /ui/", resp.StatusCode, cs)
	}
}

func TestConsole_NoTokenNoLogin(t *testing.T) {
	h := newHandler(t, "", nil)
	raw, _ := io.ReadAll(do(t, h, httptest.NewRequest(http.MethodGet, "/ui/session", nil)).Body)
	if !strings.Contains(string(raw), `"auth_required":false`) || !strings.Contains(string(raw), `"authenticated":true`) {
		t.Fatalf("session without a cluster token: got %s", raw)
	}
	resp := login(t, h, "anything", false)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 0 {
		t.Fatalf("login without a cluster token: got %d %v, want 200 and no cookie", resp.StatusCode, resp.Cookies())
	}
}

// TestConsole_WrapAPI checks the rewrite of /ui/api: the prefix goes, the
// cookie's token becomes the bearer token, the cookies do not reach the
// API.
func TestConsole_WrapAPI(t *testing.T) {
	const token = "tok/with+bytes=="
	var got *http.Request
	h := newHandler(t, token, func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.WriteHeader(http.StatusNoContent)
	})
	cookie := login(t, h, token, false).Cookies()[0]

	tests := []struct {
		name, target, auth string
		cookie             bool
		wantPath, wantAuth string
		wantRaw            string
	}{
		{name: "cookie", target: "/ui/api/v1/status?x=1", cookie: true, wantPath: "/v1/status", wantAuth: "Bearer " + token},
		{name: "no cookie", target: "/ui/api/v1/status", wantPath: "/v1/status"},
		{name: "own header wins", target: "/ui/api/v1/status", cookie: true, auth: "Bearer other", wantPath: "/v1/status", wantAuth: "Bearer other"},
		{name: "escaped", target: "/ui/api/v1/kv/a%2Fb", cookie: true, wantPath: "/v1/kv/a/b", wantRaw: "/v1/kv/a%2Fb", wantAuth: "Bearer " + token},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.cookie {
				r.AddCookie(cookie)
			}
			r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			resp := do(t, h, r)
			if resp.StatusCode != http.StatusNoContent || got == nil {
				t.Fatalf("got status %d, want the API's 204", resp.StatusCode)
			}
			if got.URL.Path != tt.wantPath || got.URL.RawPath != tt.wantRaw {
				t.Errorf("got path %q (raw %q), want %q (raw %q)", got.URL.Path, got.URL.RawPath, tt.wantPath, tt.wantRaw)
			}
			if a := got.Header.Get("Authorization"); a != tt.wantAuth {
				t.Errorf("got Authorization %q, want %q", a, tt.wantAuth)
			}
			if c := got.Header.Get("Cookie"); c != "" {
				t.Errorf("the API got cookies %q, want none", c)
			}
			if r.Header.Get("Cookie") == "" {
				t.Errorf("the caller's request was changed")
			}
		})
	}

	// Paths that only look like the prefix are not rewritten.
	for _, p := range []string{"/ui/apix/v1/status", "/ui/api"} {
		got = nil
		resp := do(t, h, httptest.NewRequest(http.MethodGet, p, nil))
		if got != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d (API called: %v), want 404 from the router", p, resp.StatusCode, got != nil)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := console.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if err := (console.Config{Token: strings.Repeat("x", 5000)}).Validate(); err == nil {
		t.Fatal("a 5000-byte token: got no error, want one (it does not fit a cookie)")
	}
}
