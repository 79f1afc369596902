package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"shoal/internal/httpjson"
)

// Sentinels of the kv module for errors.Is.
var (
	// ErrKeyNotFound: the key has no live value on the node asked (never
	// written, deleted, or not arrived there yet).
	ErrKeyNotFound = httpjson.Errorf(http.StatusNotFound, "key_not_found", "no such key")
	// ErrInvalidKey: a key is 1 to 512 bytes of UTF-8 without control
	// characters.
	ErrInvalidKey = httpjson.BadRequest("invalid_key", "invalid key")
	// ErrValueTooLarge: the value is above the node's --kv-max-value.
	ErrValueTooLarge = httpjson.Errorf(http.StatusRequestEntityTooLarge, "value_too_large", "the value is too large")
	// ErrWatchOverflow: the node closed a watch that fell behind.
	ErrWatchOverflow = httpjson.Errorf(http.StatusServiceUnavailable, "watch_overflow", "the watch fell behind")
	// ErrWatchClosed: the node ended a watch (it is shutting down, say).
	ErrWatchClosed = errors.New("kv watch closed by the node")
)

// KVVersion orders the writes of a key: a hybrid logical clock timestamp
// (Unix milliseconds and a counter) and the node that wrote it. The newest
// version wins on every node.
type KVVersion struct {
	Time    int64  `json:"time"`
	Counter uint32 `json:"counter"`
	Node    string `json:"node"`
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than o, in the order the nodes use.
func (v KVVersion) Compare(o KVVersion) int {
	switch {
	case v.Time != o.Time:
		return cmpInt(v.Time, o.Time)
	case v.Counter != o.Counter:
		return cmpInt(int64(v.Counter), int64(o.Counter))
	default:
		return strings.Compare(v.Node, o.Node)
	}
}

func cmpInt(a, b int64) int {
	if a < b {
		return -1
	}
	return 1
}

// String formats v as TIME.COUNTER@NODE.
func (v KVVersion) String() string {
	return strconv.FormatInt(v.Time, 10) + "." + strconv.FormatUint(uint64(v.Counter), 10) + "@" + v.Node
}

// KVEntry is one key as a node holds it.
type KVEntry struct {
	Key     string    `json:"key"`
	Value   string    `json:"value"`
	Version KVVersion `json:"version"`
	// UpdatedAt is when the version was written, by its writer's clock.
	UpdatedAt time.Time `json:"updated_at"`
}

// KVListOptions selects a page of keys.
type KVListOptions struct {
	// Prefix keeps the keys that start with it.
	Prefix string
	// After starts the page after this key (the Next of the previous page).
	After string
	// Limit is the page size, 1 to 1000; 0 lets the node choose (100).
	Limit int
}

// KVPage is one page of a list, in key order.
type KVPage struct {
	Items []KVEntry `json:"items"`
	// Next is the After of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

// KVEvent is one event of a watch.
type KVEvent struct {
	// Type is new_key, key_changed, key_removed or synced.
	Type string
	// Entry is the new version; for key_removed, Value is empty and
	// Removed is true. Empty for synced.
	Entry   KVEntry
	Removed bool
	// Node and Keys describe a synced event: the node that completed its
	// full sync and how many keys it then held.
	Node string
	Keys int
}

// kvPath is the API path of key, escaped segment by segment so that the
// slashes stay readable; "." and ".." segments are escaped too, so that
// nothing on the way cleans the path.
func kvPath(key string) string {
	return "/v1/kv/" + escapeSegments(key)
}

// checkKey refuses the empty key locally: its path would name the list.
func checkKey(key string) error {
	if key == "" {
		return ErrInvalidKey.WithMessage("the key is empty")
	}
	return nil
}

// KVPut writes value under key on the node, which answers once the write
// is on its disk, and returns the version it got. Other nodes receive it
// by gossip within a few rounds.
func (c *Client) KVPut(ctx context.Context, key, value string) (KVVersion, error) {
	if err := checkKey(key); err != nil {
		return KVVersion{}, fmt.Errorf("put key %q: %w", key, err)
	}
	req, err := c.newRequest(ctx, http.MethodPut, kvPath(key), nil, nil)
	if err != nil {
		return KVVersion{}, err
	}
	req.Body = io.NopCloser(strings.NewReader(value))
	req.ContentLength = int64(len(value))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(value)), nil }
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	var out struct {
		Version KVVersion `json:"version"`
	}
	if err := c.doRequest(req, &out); err != nil {
		return KVVersion{}, fmt.Errorf("put key %q: %w", key, err)
	}
	return out.Version, nil
}

// KVGet reads key from the node's copy; ErrKeyNotFound if it has no live
// value there.
func (c *Client) KVGet(ctx context.Context, key string) (KVEntry, error) {
	if err := checkKey(key); err != nil {
		return KVEntry{}, fmt.Errorf("get key %q: %w", key, err)
	}
	var e KVEntry
	if _, err := c.do(ctx, http.MethodGet, kvPath(key), nil, nil, &e); err != nil {
		return KVEntry{}, fmt.Errorf("get key %q: %w", key, err)
	}
	return e, nil
}

// KVDelete deletes key (it writes a tombstone, so it succeeds whether or
// not the key exists) and returns the tombstone's version.
func (c *Client) KVDelete(ctx context.Context, key string) (KVVersion, error) {
	if err := checkKey(key); err != nil {
		return KVVersion{}, fmt.Errorf("delete key %q: %w", key, err)
	}
	var out struct {
		Version KVVersion `json:"version"`
	}
	if _, err := c.do(ctx, http.MethodDelete, kvPath(key), nil, nil, &out); err != nil {
		return KVVersion{}, fmt.Errorf("delete key %q: %w", key, err)
	}
	return out.Version, nil
}

// KVList returns one page of the node's live keys, in key order.
func (c *Client) KVList(ctx context.Context, opts KVListOptions) (KVPage, error) {
	q := url.Values{}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.After != "" {
		q.Set("after", opts.After)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var page KVPage
	if _, err := c.do(ctx, http.MethodGet, "/v1/kv", q, nil, &page); err != nil {
		return KVPage{}, fmt.Errorf("list keys with prefix %q: %w", opts.Prefix, err)
	}
	return page, nil
}

// doRequest sends req and decodes a 2xx JSON answer into out, like do.
func (c *Client) doRequest(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// KVWatch follows the changes of the keys under prefix on the node,
// calling fn with each event in order, and a synced event once the node
// has completed its full sync (at once if it already has). It blocks until
// ctx is done (it returns an error wrapping ctx.Err()), fn returns an
// error (returned as is), the node refuses or ends the watch
// (ErrWatchClosed, or ErrWatchOverflow when the watch fell behind), or the
// connection fails or stays silent past the idle timeout (see
// WithTailIdleTimeout).
//
// Unlike Tail, KVWatch does not reconnect by itself: a node does not keep
// past events, so changes made while no watch is open are not replayed.
// A caller that reconnects should re-read (KVList) what it depends on.
func (c *Client) KVWatch(ctx context.Context, prefix string, fn func(KVEvent) error) error {
	err := c.watch(ctx, prefix, fn)
	var fe *fnError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("watch keys with prefix %q: %w", prefix, ctx.Err())
	case errors.As(err, &fe):
		return fe.err
	}
	return fmt.Errorf("watch keys with prefix %q: %w", prefix, err)
}

func (c *Client) watch(ctx context.Context, prefix string, fn func(KVEvent) error) error {
	q := url.Values{"watch": {"true"}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	err := c.readEvents(ctx, "/v1/kv", q, func(ev event) error { return dispatchKV(ev, fn) })
	if errors.Is(err, errStreamEnded) {
		return ErrWatchClosed
	}
	return err
}

// dispatchKV decodes one watch event and hands it to fn; an error event
// carries the API error that ended the watch.
func dispatchKV(ev event, fn func(KVEvent) error) error {
	if ev.data == nil {
		return nil
	}
	data := []byte(strings.Join(ev.data, "\n"))
	out := KVEvent{Type: ev.typ}
	switch ev.typ {
	case "error":
		return httpjson.ReadError(0, data)
	case "synced":
		var s struct {
			Node string `json:"node"`
			Keys int    `json:"keys"`
		}
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("decode synced event: %w", err)
		}
		out.Node, out.Keys = s.Node, s.Keys
	case "new_key", "key_changed", "key_removed":
		var e struct {
			KVEntry
			Value *string `json:"value"`
		}
		if err := json.Unmarshal(data, &e); err != nil {
			return fmt.Errorf("decode %s event: %w", ev.typ, err)
		}
		out.Entry = e.KVEntry
		if e.Value != nil {
			out.Entry.Value = *e.Value
		}
		out.Removed = ev.typ == "key_removed"
	default:
		return nil // an event type this client does not know
	}
	if err := fn(out); err != nil {
		return &fnError{err}
	}
	return nil
}
