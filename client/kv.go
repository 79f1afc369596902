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
	// ErrWatchOverflow: the node closed a watch that fell behind. It may
	// be resumed (KVWatchFrom) from the last event id received.
	ErrWatchOverflow = httpjson.Errorf(http.StatusServiceUnavailable, "watch_overflow", "the watch fell behind")
	// ErrPreconditionFailed: the IfMatch or IfNoneMatch of a write did not
	// hold on the node asked (412); the error carries "current_version"
	// and "current_etag" when the key has a value there.
	ErrPreconditionFailed = httpjson.Errorf(http.StatusPreconditionFailed, "precondition_failed", "the precondition does not hold on this node")
	// ErrUnknownParameter: the node does not know a query parameter (an
	// older node, say, that has no ?ttl).
	ErrUnknownParameter = httpjson.BadRequest("unknown_parameter", "unknown query parameter")
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

// ETag is v as the node's ETag header gives it, for If-Match: the quoted
// TIME.COUNTER@NODE, the node name percent-escaped.
func (v KVVersion) ETag() string {
	return `"` + strconv.FormatInt(v.Time, 10) + "." + strconv.FormatUint(uint64(v.Counter), 10) + "@" + url.PathEscape(v.Node) + `"`
}

// KVEntry is one key as a node holds it.
type KVEntry struct {
	Key     string    `json:"key"`
	Value   string    `json:"value"`
	Version KVVersion `json:"version"`
	// UpdatedAt is when the version was written, by its writer's clock.
	UpdatedAt time.Time `json:"updated_at"`
	// ExpiresAt is when a value written with a TTL expires; zero without.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
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
	// Type is new_key, key_changed, key_removed, synced or resync. A
	// resync (KVWatchFrom, when the node could not resume) means: drop
	// what you hold under the prefix; a new_key event for every live key
	// follows, then the changes.
	Type string
	// ID is the event's id (empty for the new_key events of a resync's
	// state); KVWatchFrom resumes after it.
	ID string
	// Reason is why a resync event's node could not resume:
	// invalid_event_id, unknown_event_id (another node's, or a restart
	// since) or history_trimmed.
	Reason string
	// Entry is the new version; for key_removed, Value is empty and
	// Removed is true. Empty for synced.
	Entry   KVEntry
	Removed bool
	// Node and Keys describe a synced event: the node that completed its
	// full sync and how many keys it then held. Node is also the node that
	// sent a resync.
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
	return c.KVPutWith(ctx, key, value, KVPutOptions{})
}

// KVPutOptions are the options of KVPutWith.
type KVPutOptions struct {
	// TTL, if not 0, makes the value expire that long after the write
	// (1s to 720h): every node then deletes it alike.
	TTL time.Duration
	// IfMatch, if not zero, writes only if the node's copy of the key is
	// at this version (else ErrPreconditionFailed). It is a check on the
	// node asked, not a compare-and-set across the cluster.
	IfMatch KVVersion
	// IfAbsent writes only if the node has no live value of the key
	// (If-None-Match: *).
	IfAbsent bool
}

// KVPutWith is KVPut with a TTL or a precondition.
func (c *Client) KVPutWith(ctx context.Context, key, value string, opts KVPutOptions) (KVVersion, error) {
	if err := checkKey(key); err != nil {
		return KVVersion{}, fmt.Errorf("put key %q: %w", key, err)
	}
	var q url.Values
	if opts.TTL != 0 {
		q = url.Values{"ttl": {opts.TTL.String()}}
	}
	req, err := c.newRequest(ctx, http.MethodPut, kvPath(key), q, nil)
	if err != nil {
		return KVVersion{}, err
	}
	if opts.IfMatch != (KVVersion{}) {
		req.Header.Set("If-Match", opts.IfMatch.ETag())
	}
	if opts.IfAbsent {
		req.Header.Set("If-None-Match", "*")
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
// KVWatch does not reconnect by itself; KVWatchFrom resumes a watch.
func (c *Client) KVWatch(ctx context.Context, prefix string, fn func(KVEvent) error) error {
	_, err := c.KVWatchFrom(ctx, prefix, "", fn)
	return err
}

// KVWatchFrom is KVWatch resuming after the event lastEventID (none if
// empty), and it returns the id to resume from next: the last id the
// stream carried on an event fn accepted (returned nil for) or on its own
// (a position), else lastEventID. The event fn returned an error for
// comes again on a resume from that id; a caller that had handled it
// resumes from its KVEvent.ID instead. The node
// replays the changes after lastEventID from its event history, so that
// none is missed; when it cannot (another node's id, a restart since, or
// too old), fn gets a resync event, then the state, then the changes:
//
//	id := ""
//	for {
//		id, err = c.KVWatchFrom(ctx, "app/", id, fn)
//		// on a lost connection or ErrWatchOverflow: wait, then loop
//	}
//
// An id is only meaningful to the node that sent it; another node answers
// it with a resync.
func (c *Client) KVWatchFrom(ctx context.Context, prefix, lastEventID string, fn func(KVEvent) error) (string, error) {
	last := lastEventID
	err := c.watch(ctx, prefix, lastEventID, func(id string) { last = id }, fn)
	var fe *fnError
	switch {
	case ctx.Err() != nil:
		return last, fmt.Errorf("watch keys with prefix %q: %w", prefix, ctx.Err())
	case errors.As(err, &fe):
		return last, fe.err
	}
	return last, fmt.Errorf("watch keys with prefix %q: %w", prefix, err)
}

func (c *Client) watch(ctx context.Context, prefix, lastEventID string, position func(string), fn func(KVEvent) error) error {
	q := url.Values{"watch": {"true"}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	err := c.readEventsFrom(ctx, "/v1/kv", q, lastEventID, func(ev event) error {
		if err := dispatchKV(ev, fn); err != nil {
			return err
		}
		// After fn took the event: a caller that stops in fn resumes
		// with that event again.
		if ev.id != "" {
			position(ev.id)
		}
		return nil
	})
	if errors.Is(err, errStreamEnded) {
		return ErrWatchClosed
	}
	return err
}

// dispatchKV decodes one watch event and hands it to fn; a stream_error
// event carries the API error that ended the watch ("error" from a node
// of an earlier release).
func dispatchKV(ev event, fn func(KVEvent) error) error {
	if ev.data == nil {
		return nil
	}
	data := []byte(strings.Join(ev.data, "\n"))
	out := KVEvent{Type: ev.typ, ID: ev.id}
	switch ev.typ {
	case "stream_error", "error":
		return httpjson.ReadError(0, data)
	case "resync":
		var r struct {
			Reason string `json:"reason"`
			Node   string `json:"node"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("decode resync event: %w", err)
		}
		out.Reason, out.Node = r.Reason, r.Node
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
