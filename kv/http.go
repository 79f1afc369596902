package kv

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
}

// ListResult is the answer to GET /v1/kv.
type ListResult struct {
	Items []EntryJSON `json:"items"`
	// Next is the key to pass as after for the next page; empty on the
	// last page.
	Next string `json:"next,omitempty"`
}

// handlePut serves PUT /v1/kv/{key...}: the body is the value. It answers
// once the write is on this node's disk; other nodes get it by gossip.
func (k *KV) handlePut(w http.ResponseWriter, r *http.Request) error {
	key, err := keyParam(r)
	if err != nil {
		return err
	}
	value, err := readValue(r.Body, k.cfg.MaxValue)
	if err != nil {
		return err
	}
	e, err := k.write(key, value, false)
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, WriteResult{Key: key, Version: e.Version})
	return nil
}

// handleDelete serves DELETE /v1/kv/{key...}: it writes a tombstone,
// whether or not the key exists here (it may exist elsewhere), so it is
// idempotent.
func (k *KV) handleDelete(w http.ResponseWriter, r *http.Request) error {
	key, err := keyParam(r)
	if err != nil {
		return err
	}
	e, err := k.write(key, "", true)
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, WriteResult{Key: key, Version: e.Version})
	return nil
}

// handleGet serves GET /v1/kv/{key...} from this node's copy; with ?raw
// the body is the value alone, as text/plain.
func (k *KV) handleGet(w http.ResponseWriter, r *http.Request) error {
	key, err := keyParam(r)
	if err != nil {
		return err
	}
	raw, err := rawParam(r.URL.Query())
	if err != nil {
		return err
	}
	if err := k.acquire(); err != nil {
		return err
	}
	e, ok, err := k.st.get(key)
	k.release()
	switch {
	case err != nil:
		return err
	case !ok:
		return ErrKeyNotFound.WithMessage("key %q not found", key)
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
		return k.handleWatch(w, r, q.prefix)
	}
	if err := k.acquire(); err != nil {
		return err
	}
	items, more, err := k.st.list(q.prefix, q.after, q.limit)
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
}

// parseListQuery validates the query of GET /v1/kv. Errors are
// ErrInvalidParameter carrying the parameter's name.
func parseListQuery(q url.Values) (listQuery, error) {
	out := listQuery{prefix: q.Get("prefix"), after: q.Get("after"), limit: defaultListLimit}
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
