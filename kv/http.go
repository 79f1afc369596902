package kv

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
)

// Query limits of GET /v1/kv.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// Routes mounts the module's routes on the /v1 router. Every path under
// /v1/kv/ is a key: nothing there is reserved for anything else. Handlers
// run concurrently with each other and with gossip.
func (k *KV) Routes(r chi.Router) {
	r.Route("/kv", func(r chi.Router) {
		r.Get("/", httpjson.Handle(k.handleList))
		r.Get("/*", httpjson.Handle(k.handleGet))
		r.Put("/*", httpjson.Handle(k.handlePut))
		r.Delete("/*", httpjson.Handle(k.handleDelete))
	})
}

// WriteResult is the answer to a PUT or DELETE.
type WriteResult struct {
	Key     string  `json:"key"`
	Version Version `json:"version"`
	// ExpiresAt is when a value written with ?ttl expires (RFC 3339).
	ExpiresAt string `json:"expires_at,omitempty"`
}

// ListResult is the answer to GET /v1/kv.
type ListResult struct {
	Items []EntryJSON `json:"items"`
	// Next is the key to pass as after for the next page; empty on the
	// last page.
	Next string `json:"next,omitempty"`
}

// handlePut serves PUT /v1/kv/{key...}[?ttl=DURATION]: the body is the
// value. It answers once the write is on this node's disk; other nodes
// get it by gossip. If-Match and If-None-Match are checked against this
// node's copy (412 when they fail); the answer carries the new version as
// its ETag.
func (k *KV) handlePut(w http.ResponseWriter, r *http.Request) error {
	key, err := keyParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkParams(q, putParams); err != nil {
		return err
	}
	ttl, err := ttlParam(q)
	if err != nil {
		return err
	}
	cond, err := parsePrecondition(r.Header)
	if err != nil {
		return err
	}
	value, err := readValue(r.Body, k.cfg.MaxValue)
	if err != nil {
		return err
	}
	e, err := k.write(writeOp{key: key, value: value, ttl: ttl, cond: cond})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(e.Version))
	out := WriteResult{Key: key, Version: e.Version}
	if e.Expires != 0 {
		out.ExpiresAt = e.json().ExpiresAt
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
	return nil
}

// handleDelete serves DELETE /v1/kv/{key...}: it writes a tombstone,
// whether or not the key exists here (it may exist elsewhere), so it is
// idempotent; with If-Match, only if this node's copy is at that version.
func (k *KV) handleDelete(w http.ResponseWriter, r *http.Request) error {
	key, err := keyParam(r)
	if err != nil {
		return err
	}
	if err := checkParams(r.URL.Query(), deleteParams); err != nil {
		return err
	}
	cond, err := parsePrecondition(r.Header)
	if err != nil {
		return err
	}
	e, err := k.write(writeOp{key: key, deleted: true, cond: cond})
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, WriteResult{Key: key, Version: e.Version})
	return nil
}

// handleGet serves GET /v1/kv/{key...} from this node's copy; with ?raw
// the body is the value alone, as text/plain. The version is the ETag; an
// If-None-Match that names it gets 304 Not Modified.
func (k *KV) handleGet(w http.ResponseWriter, r *http.Request) error {
	key, err := keyParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkParams(q, getParams); err != nil {
		return err
	}
	raw, err := rawParam(q)
	if err != nil {
		return err
	}
	var inm []Version
	if vs := r.Header.Values("If-None-Match"); len(vs) > 0 {
		var any bool
		if inm, any, err = parseETagList("If-None-Match", vs); err != nil {
			return err
		}
		if any {
			return ErrInvalidPrecondition.WithMessage("If-None-Match: * applies to PUT (create only), not GET").WithDetail("header", "If-None-Match")
		}
	}
	if err := k.acquire(); err != nil {
		return err
	}
	e, ok, err := k.st.get(key, k.cfg.now().UnixMilli())
	k.release()
	switch {
	case err != nil:
		return err
	case !ok:
		return ErrKeyNotFound.WithMessage("key %q not found", key)
	}
	w.Header().Set("ETag", etag(e.Version))
	switch {
	case containsVersion(inm, e.Version):
		w.WriteHeader(http.StatusNotModified)
		return nil
	case raw:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(e.Value)))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, e.Value)
		return nil
	}
	httpjson.WriteJSON(w, http.StatusOK, e.json())
	return nil
}

// handleList serves GET /v1/kv?prefix=&limit=&after= (a page of live
// entries in key order) and GET /v1/kv?prefix=&watch=true (a watch).
func (k *KV) handleList(w http.ResponseWriter, r *http.Request) error {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	if q.watch {
		return k.handleWatch(w, r, q)
	}
	if err := k.acquire(); err != nil {
		return err
	}
	items, more, err := k.st.list(q.prefix, q.after, q.limit, k.cfg.now().UnixMilli(), false)
	k.release()
	if err != nil {
		return err
	}
	out := ListResult{Items: make([]EntryJSON, len(items))}
	for i, e := range items {
		out.Items[i] = e.json()
	}
	if more {
		out.Next = items[len(items)-1].Key
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
	return nil
}

// keyParam returns the validated key of a /v1/kv/{key...} request. chi
// matches on the escaped path when the request has one (a key with "%2F",
// say), so the parameter is unescaped then.
func keyParam(r *http.Request) (string, error) {
	return keyFromPath(chi.URLParam(r, "*"), r.URL.RawPath != "")
}

// keyFromPath turns the wildcard of the route into a key.
func keyFromPath(p string, escaped bool) (string, error) {
	key := p
	if escaped {
		var err error
		if key, err = url.PathUnescape(p); err != nil {
			return "", ErrInvalidKey.WithMessage("the key in the path is not properly escaped: %s", err.Error())
		}
	}
	if !validKey(key) {
		return "", invalidKey(key)
	}
	return key, nil
}

func invalidKey(key string) error {
	switch {
	case key == "":
		return ErrInvalidKey.WithMessage("the key is empty")
	case len(key) > MaxKeyLen:
		return ErrInvalidKey.WithMessage("the key is %d bytes; the limit is %d", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return ErrInvalidKey.WithMessage("the key is not valid UTF-8")
	default:
		return ErrInvalidKey.WithMessage("the key contains a control character")
	}
}

// readValue reads a PUT body: at most limit bytes of UTF-8.
func readValue(body io.Reader, limit int) (string, error) {
	if body == nil {
		return "", nil
	}
	b, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
	if err != nil {
		return "", fmt.Errorf("read value: %w", err) // a *http.MaxBytesError is a 413
	}
	if len(b) > limit {
		return "", ErrValueTooLarge.WithMessage("the value is larger than the limit of %d bytes", limit).WithDetail("limit", limit)
	}
	if !utf8.Valid(b) {
		return "", ErrInvalidValue.WithMessage("the value is not valid UTF-8 text")
	}
	return string(b), nil
}

// listQuery is the parsed query of GET /v1/kv.
type listQuery struct {
	prefix, after string
	limit         int
	watch         bool
	lastEventID   string // ?last_event_id, for a client that cannot set Last-Event-ID
}

// The query parameters each route accepts. "token" is the API's: a
// stream's credential for a client that cannot set headers (see api).
var (
	listParams   = []string{"prefix", "limit", "after", "watch", "last_event_id", "token"}
	getParams    = []string{"raw", "token"}
	putParams    = []string{"ttl", "token"}
	deleteParams = []string{"token"}
)

// checkParams refuses a query parameter not in accepted, naming it and the
// accepted ones (ErrUnknownParameter), so that a typo or a feature this
// node lacks is an error rather than ignored. The first unknown one in
// name order is named, so the answer does not depend on map order.
func checkParams(q url.Values, accepted []string) error {
	var unknown []string
	for name := range q {
		if !slices.Contains(accepted, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	list := "none"
	if len(accepted) > 0 {
		list = strings.Join(accepted, ", ")
	}
	return ErrUnknownParameter.WithMessage("unknown query parameter %q; this route accepts: %s", unknown[0], list).
		WithDetail("parameter", unknown[0]).WithDetail("accepted", accepted)
}

// TTL bounds of PUT ?ttl=.
const (
	MinTTL = time.Second
	MaxTTL = 30 * 24 * time.Hour
)

// ttlParam reads ?ttl= as a Go duration ("30s", "1h30m") from MinTTL to
// MaxTTL; 0 without it.
func ttlParam(q url.Values) (time.Duration, error) {
	if !q.Has("ttl") {
		return 0, nil
	}
	s := q.Get("ttl")
	d, err := time.ParseDuration(s)
	if err != nil || d < MinTTL || d > MaxTTL {
		return 0, badParam("ttl", "ttl must be a duration from %s to %s (as 30s, 5m, 24h), got %q", MinTTL, "720h (30 days)", s)
	}
	return d, nil
}

// parseListQuery validates the query of GET /v1/kv. Errors are
// ErrInvalidParameter carrying the parameter's name, or
// ErrUnknownParameter.
func parseListQuery(q url.Values) (listQuery, error) {
	if err := checkParams(q, listParams); err != nil {
		return listQuery{}, err
	}
	out := listQuery{prefix: q.Get("prefix"), after: q.Get("after"), limit: defaultListLimit, lastEventID: q.Get("last_event_id")}
	if !validPrefix(out.prefix) {
		return listQuery{}, badParam("prefix", "prefix must be at most %d bytes of UTF-8 without control characters", MaxKeyLen)
	}
	if !validPrefix(out.after) {
		return listQuery{}, badParam("after", "after must be a key: at most %d bytes of UTF-8 without control characters", MaxKeyLen)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return listQuery{}, badParam("limit", "limit must be an integer from 1 to %d, got %q", maxListLimit, s)
		}
		out.limit = n
	}
	if s := q.Get("watch"); s != "" {
		w, err := strconv.ParseBool(s)
		if err != nil {
			return listQuery{}, badParam("watch", "watch must be true or false, got %q", s)
		}
		out.watch = w
	}
	if out.watch && (q.Has("limit") || q.Has("after")) {
		return listQuery{}, badParam("watch", "limit and after do not apply to a watch")
	}
	if !out.watch && q.Has("last_event_id") {
		return listQuery{}, badParam("last_event_id", "last_event_id applies to a watch (watch=true) only")
	}
	return out, nil
}

// rawParam reports whether ?raw was given ("?raw", "?raw=true"; "?raw=false"
// turns it off).
func rawParam(q url.Values) (bool, error) {
	if !q.Has("raw") {
		return false, nil
	}
	s := q.Get("raw")
	if s == "" {
		return true, nil
	}
	raw, err := strconv.ParseBool(s)
	if err != nil {
		return false, badParam("raw", "raw must be empty, true or false, got %q", s)
	}
	return raw, nil
}

func badParam(param, format string, args ...any) error {
	return ErrInvalidParameter.WithMessage(format, args...).WithDetail("parameter", param)
}
