package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"shoal/internal/httpjson"
)

// Browsers. A page on another origin may call the API only if its origin is
// in --cors-origins; a browser's state-changing request from any other
// origin is refused before it reaches a handler, whatever its
// Content-Type: a "simple" request (no preflight: a form post, a fetch with
// text/plain or no Content-Type, mode 'no-cors') carries a body the JSON
// decoder would accept. Requests without Origin or Sec-Fetch-Site (curl,
// the CLI, the Go client) are not browsers' and pass.

// corsHeaders are the request headers a page may send (preflight answer).
var corsHeaders = strings.Join([]string{"Authorization", "Content-Type", "Last-Event-ID", "If-Match", "X-Request-Id"}, ", ")

// corsMaxAge is how long a browser may cache a preflight answer.
const corsMaxAge = 600

// ErrOriginNotAllowed: a browser's state-changing request from an origin
// that is not in --cors-origins.
var ErrOriginNotAllowed = httpjson.Errorf(http.StatusForbidden, "origin_not_allowed",
	"requests from this page's origin are not allowed (--cors-origins)")

// ValidateOrigins reports the first entry of origins that is not a
// scheme://host[:port] origin. There is no wildcard: it would let every
// page on the web use the API with a browser's credentials.
func ValidateOrigins(origins []string) error {
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("cors origin %q: want scheme://host[:port], for example https://console.example.com", o)
		}
	}
	return nil
}

// browsers is the CORS and cross-origin middleware.
type browsers struct {
	origins []string
	protect *http.CrossOriginProtection
}

func newBrowsers(origins []string) (*browsers, error) {
	if err := ValidateOrigins(origins); err != nil {
		return nil, err
	}
	b := &browsers{origins: origins, protect: http.NewCrossOriginProtection()}
	for _, o := range origins {
		if err := b.protect.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("cors origin %q: %w", o, err)
		}
	}
	b.protect.SetDenyHandler(httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		return ErrOriginNotAllowed.WithMessage("a state-changing request from %s is not allowed: add the page's origin to --cors-origins", originOf(r))
	}))
	return b, nil
}

func originOf(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return strconv.Quote(o)
	}
	return "another site"
}

// handler answers preflights, adds the CORS headers for allowed origins,
// and refuses browsers' cross-origin writes from other origins.
func (b *browsers) handler(next http.Handler) http.Handler {
	guarded := b.protect.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(b.origins, origin)
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
		if origin != "" && !allowed && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && !sameOrigin(origin, r.Host) {
			// A WebSocket is not subject to CORS: the browser opens it from
			// any page and lets the page read it. Only a page of this
			// node's own origin or of --cors-origins may (the hubs leave
			// the Origin check to this, so that both lists agree).
			httpjson.WriteError(w, r, ErrOriginNotAllowed.WithMessage("a WebSocket from %s is not allowed: add the page's origin to --cors-origins", originOf(r)))
			return
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				httpjson.WriteError(w, r, ErrOriginNotAllowed.WithMessage("%s is not in --cors-origins", originOf(r)))
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether origin (scheme://host[:port]) names host, the
// request's Host: a page served by this node.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}
