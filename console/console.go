package console

import (
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// CookieName is the console's session cookie: it holds the API token,
// HttpOnly and scoped to Path (/ui/).
const CookieName = "shoal_console"

// Path is where the console lives; APIPrefix is the part of it that
// carries API calls (/ui/api/v1/status is GET /v1/status).
const (
	Path      = "/ui/"
	APIPrefix = "/ui/api"
)

// maxTokenLen bounds the token a login form may send: its cookie must
// stay under browsers' 4096-byte limit.
const maxTokenLen = 3000

//go:embed web
var webFS embed.FS

// web is the embedded tree, rooted at web/.
var web = func() fs.FS {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	return sub
}()

// contentTypes are the types of the assets the console ships; a file
// with another extension is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// contentSecurity allows the console's own scripts, styles and API
// (websockets included) and nothing else; no framing.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

var (
	// ErrWrongToken: the login form's token is not the cluster's.
	ErrWrongToken = httpjson.Errorf(http.StatusUnauthorized, "wrong_token", "the token is not valid for this cluster")
	// ErrAssetNotFound: no console asset at that path.
	ErrAssetNotFound = httpjson.Errorf(http.StatusNotFound, "asset_not_found", "no such console asset")
)

// Config is what the console needs from the node.
type Config struct {
	// Token is the API's bearer token; empty: the API is open and the
	// console needs no login.
	Token string
	// Scoped, if not nil, reports whether a secret is a valid scoped
	// token (the acl module's): the console then takes it at login too,
	// and its pages show what the token's rules allow.
	Scoped func(secret string) bool
}

// DefaultConfig returns a console with no token.
func DefaultConfig() Config { return Config{} }

// Validate reports a configuration the console cannot serve: a token too
// long for a cookie.
func (c Config) Validate() error {
	if len(c.Token) > maxTokenLen {
		return fmt.Errorf("console: the token is %d bytes, longer than the %d a cookie holds", len(c.Token), maxTokenLen)
	}
	return nil
}

// Console serves the web console. Its handlers are safe for concurrent
// use and hold no per-request state.
type Console struct {
	token  []byte
	scoped func(secret string) bool
}

// New returns the console for cfg.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Console{token: []byte(cfg.Token), scoped: cfg.Scoped}, nil
}

// Routes mounts the console's public routes on the node's root router,
// outside the token check (they serve no cluster data):
//
//	GET  /ui               redirect to /ui/
//	GET  /ui/              the page (pages are #/cluster, #/logs, ...)
//	GET  /ui/assets/*      scripts and styles
//	GET  /ui/session       {"auth_required","authenticated"}
//	POST /ui/login         {"token"}: sets the cookie, or 401 wrong_token
//	POST /ui/logout        clears the cookie
//
// /ui/api/... is not a route: Wrap rewrites it before routing.
func (c *Console) Routes(r chi.Router) {
	r.Get("/ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Path, http.StatusMovedPermanently)
	})
	r.Get("/ui/", httpjson.Handle(c.index))
	r.Get("/ui/assets/*", httpjson.Handle(c.asset))
	r.Get("/ui/session", httpjson.Handle(c.session))
	r.Post("/ui/login", httpjson.Handle(c.login))
	r.Post("/ui/logout", httpjson.Handle(c.logout))
}

// Wrap returns next with the console's API path in front: a request for
// /ui/api/<path> is served by next as /<path>, with the console cookie's
// token as its bearer token (unless it carries an Authorization header of
// its own) and without its cookies. Every other request goes to next
// untouched. Wrap goes in front of the whole API router, so the rewritten
// request meets the same middleware as any API call: cross-origin
// protection, limits, authentication, the access log and metrics.
func (c *Console) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, APIPrefix)
		if !ok || !strings.HasPrefix(rest, "/") {
			next.ServeHTTP(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = rest
		if u.RawPath != "" {
			u.RawPath = strings.TrimPrefix(u.RawPath, APIPrefix)
		}
		r2.URL = &u
		r2.RequestURI = u.RequestURI()
		r2.Header = r.Header.Clone()
		r2.Header.Del("Cookie")
		if tok, ok := cookieToken(r); ok && r.Header.Get("Authorization") == "" {
			r2.Header.Set("Authorization", "Bearer "+tok)
		}
		next.ServeHTTP(w, r2)
	})
}

// authenticated reports whether r carries the console cookie with the
// right token (always true without a token).
func (c *Console) authenticated(r *http.Request) bool {
	if len(c.token) == 0 {
		return true
	}
	tok, ok := cookieToken(r)
	return ok && subtle.ConstantTimeCompare([]byte(tok), c.token) == 1
}

// cookieToken returns the token r's console cookie holds. The cookie
// holds it base64url-encoded: a token may contain bytes a cookie value
// cannot (spaces, quotes, ';', ',').
func cookieToken(r *http.Request) (string, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) error {
	return serveFile(w, "index.html")
}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "*")
	if name == "" || name == "index.html" || !fs.ValidPath(name) {
		return ErrAssetNotFound.WithMessage("no console asset %q", modules.Echo(name))
	}
	return serveFile(w, name)
}

// serveFile writes the embedded file name with its content type and the
// console's security headers.
func serveFile(w http.ResponseWriter, name string) error {
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok {
		return ErrAssetNotFound.WithMessage("no console asset %q", modules.Echo(name))
	}
	b, err := fs.ReadFile(web, name)
	if err != nil {
		return ErrAssetNotFound.WithMessage("no console asset %q", modules.Echo(name))
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if ctype == contentTypes[".html"] {
		h.Set("Content-Security-Policy", contentSecurity)
		h.Set("X-Frame-Options", "DENY")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.WriteJSON(w, http.StatusOK, map[string]bool{
		"auth_required": len(c.token) > 0,
		"authenticated": c.authenticated(r),
	})
	return nil
}

// login checks the token and, if it is the cluster's bootstrap token or a
// valid scoped token, keeps it in the console's cookie. The body is {"token": "..."}.
func (c *Console) login(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token string `json:"token"`
	}
	if err := httpjson.DecodeJSON(r, &req); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	if len(c.token) == 0 {
		httpjson.WriteJSON(w, http.StatusOK, map[string]bool{"auth_required": false, "authenticated": true})
		return nil
	}
	if req.Token == "" || len(req.Token) > maxTokenLen {
		return ErrWrongToken
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), c.token) != 1 && (c.scoped == nil || !c.scoped(req.Token)) {
		return ErrWrongToken
	}
	http.SetCookie(w, c.cookie(r, base64.RawURLEncoding.EncodeToString([]byte(req.Token)), 0))
	httpjson.WriteJSON(w, http.StatusOK, map[string]bool{"auth_required": true, "authenticated": true})
	return nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	http.SetCookie(w, c.cookie(r, "", -1))
	httpjson.WriteJSON(w, http.StatusOK, map[string]bool{"auth_required": len(c.token) > 0, "authenticated": len(c.token) == 0})
	return nil
}

// cookie is the console's session cookie: a browser session cookie
// (maxAge 0) or its removal (maxAge < 0). Secure when the request came
// over TLS.
func (c *Console) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     CookieName,
		Value:    value,
		Path:     Path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
}
