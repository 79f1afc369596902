package objectsync

import (
	_ "embed"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
	"shoal/internal/sse"
	"shoal/modules"
	"shoal/objectsync/internal/document"
)

// Routes mounts the module's routes on the /v1 router:
//
//	GET    /v1/objects?pattern=          ids and versions (all, or those matching)
//	GET    /v1/objects/ws                the websocket (subprotocol shoal.objects.v2 or v1)
//	GET    /v1/objects/client.js         the browser client, an ES module
//	GET    /v1/objects/viewer            a page that shows the objects live
//	POST   /v1/objects/deps/{name}/bump  increment a dependency counter
//	GET    /v1/objects/deps/{name}       read it
//	GET    /v1/objects/{id}              {"id","version","object"}
//	PUT    /v1/objects/{id}              {"version","object"}, as a master's set
//	PATCH  /v1/objects/{id}?from=&to=    an application/json-patch+json body
//	DELETE /v1/objects/{id}              remove the object
//	GET    /v1/objects/{id}/watch        Server-Sent Events: object, then patches
//
// An id with characters a path segment cannot hold ('/', '?', '%') is sent
// percent-encoded. Handlers run concurrently with each other and with the
// state machine.
func (o *ObjectSync) Routes(r chi.Router) {
	o.init()
	r.Route("/objects", func(r chi.Router) {
		r.Get("/", httpjson.Handle(o.handleList))
		r.Get("/ws", httpjson.Handle(o.handleWS))
		r.Post("/deps/{name}/bump", httpjson.Handle(o.handleBump))
		r.Get("/deps/{name}", httpjson.Handle(o.handleDep))
		r.Get("/{id}", httpjson.Handle(o.handleGet))
		r.Put("/{id}", httpjson.Handle(o.handlePut))
		r.Patch("/{id}", httpjson.Handle(o.handlePatch))
		r.Delete("/{id}", httpjson.Handle(o.handleDelete))
		r.Get("/{id}/watch", httpjson.Handle(o.handleWatch))
	})
}

// PublicRoutes serves the browser client and the viewer page without a
// token: a page loads them first, then connects with its token.
func (o *ObjectSync) PublicRoutes(r chi.Router) {
	r.Get("/v1/objects/client.js", o.handleClientJS)
	r.Get("/v1/objects/viewer", o.handleViewer)
	r.Get("/ui/objects", o.handleViewer)
}

// clientJS is the browser client (web/client.js).
//
//go:embed web/client.js
var clientJS []byte

func (o *ObjectSync) handleClientJS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(clientJS)
}

// viewerHTML is the viewer page (web/viewer.html), after seapig-viewer.
//
//go:embed web/viewer.html
var viewerHTML []byte

func (o *ObjectSync) handleViewer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(viewerHTML)
}

// idParam returns the {id} URL parameter, unescaped once.
func idParam(r *http.Request) (string, error) {
	id := chi.URLParam(r, "id")
	if r.URL.RawPath != "" { // chi matched the escaped path
		u, err := url.PathUnescape(id)
		if err != nil {
			return "", ErrInvalidID.WithMessage("id %q is not correctly percent-encoded", truncate(id))
		}
		id = u
	}
	if !document.ValidID(id) {
		return "", ErrInvalidID.WithMessage("id %q is not 1 to %d bytes of UTF-8 without control characters or '*'", truncate(id), document.MaxIDLen)
	}
	return id, nil
}

func (o *ObjectSync) appliedHeader(w http.ResponseWriter) {
	if r, err := o.raft(); err == nil {
		w.Header().Set(httpjson.HeaderAppliedIndex, strconv.FormatUint(r.AppliedIndex(), 10))
	}
}

// consistent runs a read barrier if the request asks for ?consistent=true.
func (o *ObjectSync) consistent(r *http.Request) error {
	if v := r.URL.Query().Get("consistent"); v == "" || v == "false" {
		return nil
	}
	rf, err := o.raft()
	if err != nil {
		return err
	}
	return rf.ReadIndex(r.Context())
}

type listEntry struct {
	ID      string          `json:"id"`
	Version json.RawMessage `json:"version"`
}

func (o *ObjectSync) handleList(w http.ResponseWriter, r *http.Request) error {
	pattern := r.URL.Query().Get("pattern")
	if pattern == "" {
		pattern = "*"
	}
	if !document.ValidPattern(pattern) {
		return ErrInvalidPattern
	}
	if err := o.consistent(r); err != nil {
		return err
	}
	o.appliedHeader(w)
	out := []listEntry{}
	for _, obj := range o.matching(pattern) {
		out = append(out, listEntry{ID: obj.id, Version: json.RawMessage(obj.ver.String())})
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"objects": out})
	return nil
}

type objectJSON struct {
	ID      string          `json:"id"`
	Version json.RawMessage `json:"version"`
	Object  json.RawMessage `json:"object,omitempty"`
}

func (o *ObjectSync) handleGet(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	if err := o.consistent(r); err != nil {
		return err
	}
	o.appliedHeader(w)
	obj := o.lookup(id)
	if obj == nil {
		return ErrNotFound.WithMessage("no object %q", truncate(id))
	}
	httpjson.WriteJSON(w, http.StatusOK, objectJSON{ID: id, Version: json.RawMessage(obj.ver.String()), Object: json.RawMessage(obj.data)})
	return nil
}

type putRequest struct {
	Version json.RawMessage `json:"version"`
	Object  json.RawMessage `json:"object"`
}

func (o *ObjectSync) handlePut(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	var req putRequest
	if err := httpjson.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Version == nil || req.Object == nil {
		return httpjson.ErrBadJSON.WithMessage("the body is {\"version\": ..., \"object\": {...}}")
	}
	ver, err := parseVersion(req.Version, "version")
	if err != nil {
		return err
	}
	if _, err := o.set(r.Context(), id, "", ver, req.Object); err != nil {
		return err
	}
	o.appliedHeader(w)
	httpjson.WriteJSON(w, http.StatusOK, objectJSON{ID: id, Version: json.RawMessage(ver.String())})
	return nil
}

// PatchContentType is the media type of a PATCH body (RFC 6902).
const PatchContentType = "application/json-patch+json"

func (o *ObjectSync) handlePatch(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != PatchContentType {
		return ErrContentType.WithMessage("PATCH takes Content-Type: %s, got %q", PatchContentType, r.Header.Get("Content-Type"))
	}
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" {
		return ErrInvalidVersion.WithMessage("PATCH needs ?from= and ?to=, the versions before and after (JSON, URL-encoded)")
	}
	from, err := parseVersion([]byte(q.Get("from")), "from")
	if err != nil {
		return err
	}
	to, err := parseVersion([]byte(q.Get("to")), "to")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return httpjson.As(err)
	}
	if _, err := o.patch(r.Context(), id, "", from, to, body); err != nil {
		return err
	}
	o.appliedHeader(w)
	httpjson.WriteJSON(w, http.StatusOK, objectJSON{ID: id, Version: json.RawMessage(to.String())})
	return nil
}

func (o *ObjectSync) handleDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	if err := o.remove(r.Context(), id); err != nil {
		return err
	}
	o.appliedHeader(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func depParam(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	if !modules.ValidName(name) {
		return "", ErrInvalidName.WithMessage("dependency name %q is not 1 to %d bytes of letters, digits, '.', '_' and '-'", truncate(name), modules.MaxNameLen)
	}
	return name, nil
}

type depJSON struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
}

func (o *ObjectSync) handleBump(w http.ResponseWriter, r *http.Request) error {
	name, err := depParam(r)
	if err != nil {
		return err
	}
	v, err := o.bump(r.Context(), name)
	if err != nil {
		return err
	}
	o.appliedHeader(w)
	httpjson.WriteJSON(w, http.StatusOK, depJSON{Name: name, Version: v})
	return nil
}

func (o *ObjectSync) handleDep(w http.ResponseWriter, r *http.Request) error {
	name, err := depParam(r)
	if err != nil {
		return err
	}
	if err := o.consistent(r); err != nil {
		return err
	}
	o.appliedHeader(w)
	o.mu.RLock()
	v := o.st.deps[name]
	o.mu.RUnlock()
	httpjson.WriteJSON(w, http.StatusOK, depJSON{Name: name, Version: v})
	return nil
}

// watchHeartbeat is how often a quiet watch sends a comment.
const watchHeartbeat = 15 * time.Second

// ErrTooManyWatches: the node serves --objectsync-max-watches watches.
var ErrTooManyWatches = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "too_many_watches",
	Message: "this node serves as many watches as it may", RetryAfter: 5 * time.Second}

// handleWatch streams one object as Server-Sent Events: "object" (the
// full state), then "patch" events, "removed" if it goes; each event's id
// is the version it brings, so a client reconnecting with Last-Event-ID
// gets only the patches after it while that version is in the history.
func (o *ObjectSync) handleWatch(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	if o.watches.Add(1) > int64(o.cfg.MaxWatches) {
		o.watches.Add(-1)
		return ErrTooManyWatches
	}
	defer o.watches.Add(-1)
	have := ""
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if v, err := document.ParseVersion([]byte(last)); err == nil {
			have = v.String()
		}
	}
	stream, err := o.streams.Open(w, r)
	if err != nil {
		return err
	}
	defer stream.Close()
	sk := newSSESink(o.cfg.SendQueue)
	sess := o.fo.open(sk, o.cfg.SendQueue)
	defer o.fo.close(sess)
	resolve, err := o.fo.subscribe(sess, id, false, have, nil, 1)
	if err != nil {
		return err
	}
	if len(resolve) > 0 {
		o.readBarrier(r.Context())
		o.fo.resolve(sess, id)
	}
	o.appliedHeader(w)
	if err := stream.Begin(); err != nil {
		return nil
	}
	beat := time.NewTicker(watchHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-stream.Done():
			return nil
		case <-beat.C:
			stream.Heartbeat()
		case <-sk.wake:
		}
		for _, f := range sk.take() {
			stream.Event(sse.Event{ID: f.ver, Type: f.kind, Data: f.b})
		}
		if err := stream.Flush(); err != nil {
			return nil
		}
	}
}

// sseSink is an SSE watch as a fan-out sink: a bounded queue that the
// watch's handler drains.
type sseSink struct {
	mu     sync.Mutex
	frames []*frame
	limit  int
	wake   chan struct{}
}

func newSSESink(limit int) *sseSink {
	return &sseSink{limit: limit, wake: make(chan struct{}, 1)}
}

func (s *sseSink) send(f *frame) error {
	s.mu.Lock()
	if len(s.frames) >= s.limit {
		s.mu.Unlock()
		return errFull
	}
	s.frames = append(s.frames, f)
	s.mu.Unlock()
	s.notify()
	return nil
}

func (s *sseSink) replace(f *frame) error {
	s.mu.Lock()
	s.frames = append(s.frames[:0:0], f)
	s.mu.Unlock()
	s.notify()
	return nil
}

func (s *sseSink) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func (s *sseSink) take() []*frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.frames
	s.frames = nil
	return out
}

func (s *sseSink) notify() { signal(s.wake) }
