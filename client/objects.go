package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"shoal/internal/httpjson"
)

// Sentinels of the objectsync module for errors.Is.
var (
	// ErrObjectNotFound: the node holds no object with that id.
	ErrObjectNotFound = httpjson.Errorf(http.StatusNotFound, "object_not_found", "no such object")
	// ErrInvalidID: an id is 1 to 256 bytes of UTF-8 without control
	// characters or '*'.
	ErrInvalidID = httpjson.BadRequest("invalid_id", "invalid object id")
	// ErrObjectConflict: a websocket master holds the id.
	ErrObjectConflict = httpjson.Errorf(http.StatusConflict, "conflict", "another master holds the object")
	// ErrStaleVersion: the version does not follow the current one.
	ErrStaleVersion = httpjson.Errorf(http.StatusConflict, "stale_version", "the version does not follow the current one")
	// ErrVersionMismatch: a patch's from is not the current version.
	ErrVersionMismatch = httpjson.Errorf(http.StatusConflict, "version_mismatch", "the patch's from is not the current version")
	// ErrPatchFailed: the patch does not apply to the current object.
	ErrPatchFailed = httpjson.Errorf(http.StatusConflict, "patch_failed", "the patch does not apply to the current object")
	// ErrObjectWatchClosed: the node ended an object watch.
	ErrObjectWatchClosed = errors.New("object watch closed by the node")
)

// PatchContentType is the media type of a PatchObject body (RFC 6902).
const PatchContentType = "application/json-patch+json"

// Object is one object of the objectsync module. Version and Object are
// JSON as the node holds them (canonical: keys sorted, no insignificant
// whitespace). Object is empty in lists and in write answers.
type Object struct {
	ID      string          `json:"id"`
	Version json.RawMessage `json:"version"`
	Object  json.RawMessage `json:"object,omitempty"`
}

// ObjectEvent is one event of an object watch.
type ObjectEvent struct {
	// Type is "object" (a full state: the first event, and whenever a
	// patch would not do), "patch" or "removed".
	Type string `json:"type"`
	ID   string `json:"id"`
	// Version is the version the event brings: an object's version, a
	// patch's to. Empty for removed.
	Version json.RawMessage `json:"version,omitempty"`
	// Object is the full state of an object event; null for a version
	// whose producer stalled.
	Object json.RawMessage `json:"object,omitempty"`
	// From and Patch are a patch event's base version and its RFC 6902
	// operations.
	From  json.RawMessage `json:"from,omitempty"`
	Patch json.RawMessage `json:"patch,omitempty"`
}

// objectPath is the API path of an object: the id is one segment, so '/'
// is escaped too, and "." and ".." so that nothing cleans the path.
func objectPath(id string) string {
	switch id {
	case ".":
		return "/v1/objects/%2E"
	case "..":
		return "/v1/objects/%2E%2E"
	}
	return "/v1/objects/" + url.PathEscape(id)
}

// checkID refuses the empty id locally: its URL would name the list.
func checkID(id string) error {
	if id == "" {
		return ErrInvalidID.WithMessage("the id is empty")
	}
	return nil
}

// GetObject reads the object id from the node's state; ErrObjectNotFound
// if the node holds none. The ids ws, client.js, viewer and deps are
// routes of the module, not objects.
func (c *Client) GetObject(ctx context.Context, id string) (Object, error) {
	if err := checkID(id); err != nil {
		return Object{}, fmt.Errorf("get object %q: %w", id, err)
	}
	var o Object
	if _, err := c.do(ctx, http.MethodGet, objectPath(id), nil, nil, &o); err != nil {
		return Object{}, fmt.Errorf("get object %q: %w", id, err)
	}
	return o, nil
}

// PutObject writes the whole object id at version, as a master's set: the
// version must follow the current one (ErrStaleVersion), and no websocket
// master may hold the id (ErrObjectConflict). The node answers once Raft
// committed the write and it applied it; the answer holds the id and the
// version.
func (c *Client) PutObject(ctx context.Context, id string, version, object json.RawMessage) (Object, error) {
	if err := checkID(id); err != nil {
		return Object{}, fmt.Errorf("put object %q: %w", id, err)
	}
	in := struct {
		Version json.RawMessage `json:"version"`
		Object  json.RawMessage `json:"object"`
	}{version, object}
	var o Object
	if _, err := c.do(ctx, http.MethodPut, objectPath(id), nil, in, &o); err != nil {
		return Object{}, fmt.Errorf("put object %q: %w", id, err)
	}
	return o, nil
}

// PatchObject applies an RFC 6902 patch (a JSON array of operations) to
// the object id, moving it from version from to version to (both JSON, as
// "3" or "[1,2]"). ErrVersionMismatch if from is not the current version,
// ErrPatchFailed if the patch does not apply.
func (c *Client) PatchObject(ctx context.Context, id, from, to string, patch json.RawMessage) (Object, error) {
	if err := checkID(id); err != nil {
		return Object{}, fmt.Errorf("patch object %q: %w", id, err)
	}
	req, err := c.newRequest(ctx, http.MethodPatch, objectPath(id), url.Values{"from": {from}, "to": {to}}, nil)
	if err != nil {
		return Object{}, err
	}
	setBody(req, bytes.NewReader(patch))
	req.Header.Set("Content-Type", PatchContentType)
	var o Object
	if err := c.doRequest(req, &o); err != nil {
		return Object{}, fmt.Errorf("patch object %q: %w", id, err)
	}
	return o, nil
}

// DeleteObject removes the object id; its subscribers get removed.
func (c *Client) DeleteObject(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("delete object %q: %w", id, err)
	}
	if _, err := c.do(ctx, http.MethodDelete, objectPath(id), nil, nil, nil); err != nil {
		return fmt.Errorf("delete object %q: %w", id, err)
	}
	return nil
}

// ListObjects returns the ids and versions of the node's objects that
// match pattern ('*' matches any run of characters; "" matches all). The
// entries' Object is empty.
func (c *Client) ListObjects(ctx context.Context, pattern string) ([]Object, error) {
	q := url.Values{}
	if pattern != "" {
		q.Set("pattern", pattern)
	}
	var out struct {
		Objects []Object `json:"objects"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/objects", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list objects matching %q: %w", pattern, err)
	}
	if out.Objects == nil {
		out.Objects = []Object{}
	}
	return out.Objects, nil
}

// WatchObject follows the object id on the node, calling fn with each
// event in order: the full object first (once it exists), then patches,
// and removed if it goes. It blocks until ctx is done (it returns an error
// wrapping ctx.Err()), fn returns an error (returned as is), the node
// refuses or ends the watch (an *Error, or ErrObjectWatchClosed), or the
// connection fails or stays silent past the idle timeout (see
// WithTailIdleTimeout; the node sends a heartbeat every 15 seconds).
//
// WatchObject does not reconnect by itself. A new watch starts with the
// full object again, so a caller that reconnects misses no state, only
// the intermediate versions.
//
// fn runs on WatchObject's goroutine and the stream is not read while it
// runs; the node collapses what a slow watcher has not received into the
// full state.
func (c *Client) WatchObject(ctx context.Context, id string, fn func(ObjectEvent) error) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("watch object %q: %w", id, err)
	}
	err := c.watchObject(ctx, id, fn)
	var fe *fnError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("watch object %q: %w", id, ctx.Err())
	case errors.As(err, &fe):
		return fe.err
	}
	return fmt.Errorf("watch object %q: %w", id, err)
}

func (c *Client) watchObject(ctx context.Context, id string, fn func(ObjectEvent) error) error {
	err := c.readEvents(ctx, objectPath(id)+"/watch", nil, func(ev event) error { return dispatchObject(ev, fn) })
	if errors.Is(err, errStreamEnded) {
		return ErrObjectWatchClosed
	}
	return err
}

// dispatchObject decodes one watch event and hands it to fn; an error
// event carries the API error that ended the watch.
func dispatchObject(ev event, fn func(ObjectEvent) error) error {
	if ev.data == nil {
		return nil
	}
	data := []byte(strings.Join(ev.data, "\n"))
	var out ObjectEvent
	switch ev.typ {
	case "error":
		// The API's error shape, or a websocket error frame.
		var f struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &f) == nil && f.Code != "" {
			return &httpjson.Error{Code: f.Code, Message: f.Message}
		}
		return httpjson.ReadError(0, data)
	case "object", "patch", "removed":
		var f struct {
			ObjectEvent
			To json.RawMessage `json:"to"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("decode %s event: %w", ev.typ, err)
		}
		out = f.ObjectEvent
		out.Type = ev.typ
		if ev.typ == "patch" {
			out.Version = f.To
		}
		if len(out.Version) == 0 && ev.id != "" && json.Valid([]byte(ev.id)) {
			out.Version = json.RawMessage(ev.id)
		}
	default:
		return nil // an event type this client does not know
	}
	if err := fn(out); err != nil {
		return &fnError{err}
	}
	return nil
}
