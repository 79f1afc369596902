package logstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
	"shoal/logstream/segment"
	"shoal/modules"
)

// Query limits of GET /v1/logs/{name}.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Routes mounts the module's routes on the /v1 router. Handlers run
// concurrently with each other and with the state machine.
func (l *Log) Routes(r chi.Router) {
	l.init()
	r.Route("/logs", func(r chi.Router) {
		r.Get("/", httpjson.Handle(l.handleList))
		r.Post("/{name}", httpjson.Handle(l.handlePublish))
		r.Get("/{name}", httpjson.Handle(l.handleRead))
		r.Put("/{name}", httpjson.Handle(l.handleConfigure))
		r.Delete("/{name}", httpjson.Handle(l.handleDelete))
		r.Get("/{name}/stream", httpjson.Handle(l.handleStream))
	})
}

// publishRequest is the body of POST /v1/logs/{name}: either one entry
// (id, data) or a batch (entries).
type publishRequest struct {
	ID      *string         `json:"id"`
	Data    json.RawMessage `json:"data"`
	Entries *[]publishEntry `json:"entries"`
}

type publishEntry struct {
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
}

// decodePublish reads and validates a publish body. batch reports whether
// the body used the "entries" form. Data is returned compacted. An empty or
// missing id means "no deduplication": the entry is stored with an empty id.
// Errors are *httpjson.Error values.
func decodePublish(body io.Reader) (entries []newEntry, batch bool, err error) {
	var req publishRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return nil, false, err
	}
	var in []publishEntry
	if req.Entries != nil {
		if req.ID != nil || req.Data != nil {
			return nil, false, ErrInvalidBatch.WithMessage("a body has either \"entries\" or a single \"id\" and \"data\", not both")
		}
		in, batch = *req.Entries, true
		if len(in) == 0 || len(in) > maxBatch {
			return nil, false, ErrInvalidBatch.WithMessage("a batch holds 1 to %d entries, got %d", maxBatch, len(in))
		}
	} else {
		one := publishEntry{Data: req.Data}
		if req.ID != nil {
			one.ID = *req.ID
		}
		in = []publishEntry{one}
	}
	entries = make([]newEntry, len(in))
	for i, e := range in {
		where := "the entry"
		if batch {
			where = fmt.Sprintf("entry %d", i)
		}
		if len(e.Data) == 0 {
			return nil, false, ErrMissingData.WithMessage("%s has no \"data\" member", where)
		}
		if len(e.ID) > maxIDLen {
			return nil, false, ErrInvalidID.WithMessage("the id of %s is %d bytes; the limit is %d", where, len(e.ID), maxIDLen)
		}
		entries[i] = newEntry{id: e.ID, data: compactJSON(e.Data)}
	}
	return entries, batch, nil
}

// publishResponse is the answer to a single-entry publish.
type publishResponse struct {
	Index     uint64 `json:"index"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// batchResponse is the answer to a batch publish.
type batchResponse struct {
	Indexes    []uint64 `json:"indexes"`
	Duplicates []bool   `json:"duplicates"`
}

// handlePublish serves POST /v1/logs/{name}. It answers only after the
// command was committed and applied: 201 if an entry was created, 200 if
// every entry was a duplicate of a remembered id.
func (l *Log) handlePublish(w http.ResponseWriter, r *http.Request) error {
	name, err := logName(r)
	if err != nil {
		return err
	}
	entries, batch, err := decodePublish(r.Body)
	if err != nil {
		return err
	}
	cmd := appendCmd{
		log:         name,
		maxEntries:  uint64(l.cfg.MaxEntries),
		dedupWindow: l.cfg.DedupWindow,
		entries:     entries,
	}
	op, payload := l.submission(opAppend, cmd.size())
	applied, err := l.host.Raft().Apply(r.Context(), op, appendAppend(payload, cmd))
	l.countCap(err)
	if err != nil {
		return fmt.Errorf("publish to log %s: %w", name, err)
	}
	res, err := decodeResult(applied.Result)
	if err == nil && len(res.indexes) != len(entries) {
		err = fmt.Errorf("%d results for %d entries: %w", len(res.indexes), len(entries), ErrMalformedCommand)
	}
	if err != nil {
		return fmt.Errorf("publish to log %s at raft index %d: %w", name, applied.Index, err)
	}
	status := http.StatusOK
	for i, dup := range res.duplicates {
		if dup {
			l.m.publishDuplicate.Inc()
			continue
		}
		status = http.StatusCreated
		l.m.publishCreated.Inc()
		l.m.publishBytes.Observe(float64(len(entries[i].data)))
	}
	if batch {
		httpjson.WriteJSON(w, status, batchResponse{Indexes: res.indexes, Duplicates: res.duplicates})
		return nil
	}
	httpjson.WriteJSON(w, status, publishResponse{Index: res.indexes[0], Duplicate: res.duplicates[0]})
	return nil
}

// logName returns the validated {name} URL parameter.
func logName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	if !modules.ValidAPIName(name) {
		return "", ErrInvalidLogName.WithMessage("invalid log name %q: a log name is 1 to %d bytes of letters, digits, '.', '_' and '-', and not . or ..", modules.Echo(name), maxNameLen)
	}
	return name, nil
}

// entryJSON is an entry as the API shows it.
type entryJSON struct {
	Index uint64          `json:"index"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
	Time  string          `json:"time"`
}

func entriesJSON(entries []segment.Entry) []entryJSON {
	out := make([]entryJSON, len(entries))
	for i, e := range entries {
		out[i] = entryJSON{Index: e.Offset, ID: e.ID, Data: e.Data, Time: formatTime(e.Time)}
	}
	return out
}

// readResponse is the answer to GET /v1/logs/{name}.
type readResponse struct {
	Entries []entryJSON `json:"entries"`
	// Next is the index to ask for next.
	Next uint64 `json:"next"`
	// Log describes the log as this node holds it.
	Log logInfo `json:"log"`
}

// maxReadBytes bounds the data of one read's answer; a read returns at
// least one entry whatever its size.
const maxReadBytes = 4 << 20

// view is what a reader takes of a log under the lock.
type view struct {
	ls          *logState
	store       *segment.Store
	first, next uint64
	notify      <-chan struct{}
	info        logInfo
}

// lookup returns the log's view, ok false if there is no such log.
func (l *Log) lookup(name string, withInfo bool) (v view, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ls := l.st.logs[name]
	if ls == nil {
		return view{}, false
	}
	v = view{ls: ls, store: ls.store, first: ls.first, next: ls.next, notify: ls.notify}
	if withInfo {
		v.info = ls.info()
	}
	return v, true
}

// read reads up to limit entries of v from from on (from at or above
// v.first). A store that trimmed further than the state machine has
// published yet answers ErrLogTrimmed with its own first index.
func (l *Log) read(v view, from uint64, limit, maxBytes int) ([]segment.Entry, error) {
	if from >= v.next {
		return nil, nil
	}
	if v.store == nil {
		return nil, ErrLogUnavailable.WithMessage("log %q is being deleted on this node", v.ls.name)
	}
	limit = int(min(uint64(limit), v.next-from))
	entries, err := v.store.Read(from, limit, maxBytes)
	switch {
	case errors.Is(err, segment.ErrTrimmed):
		return nil, trimmedError(v.ls.name, from, v.store.First())
	case errors.Is(err, segment.ErrClosed):
		return nil, ErrLogNotFound.WithMessage("log %q was deleted", v.ls.name)
	case err != nil:
		return nil, fmt.Errorf("read log %s: %w", v.ls.name, err)
	}
	return entries, nil
}

// handleRead serves GET /v1/logs/{name}?from=N&limit=M&consistent=true
// from this node's state and store.
func (l *Log) handleRead(w http.ResponseWriter, r *http.Request) error {
	name, err := logName(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, hasFrom, err := indexParam(q.Get("from"), "from", 1)
	if err != nil {
		return err
	}
	limit := uint64(defaultLimit)
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.ParseUint(s, 10, 64)
		if err != nil || limit < 1 || limit > maxLimit {
			return badParam("limit", "limit must be an integer from 1 to %d, got %q", maxLimit, s)
		}
	}
	if err := l.barrier(w, r); err != nil {
		return err
	}
	v, ok := l.lookup(name, true)
	if !ok {
		return ErrLogNotFound.WithMessage("log %q does not exist", name)
	}
	if !hasFrom {
		from = v.first
	}
	if from < v.first {
		return trimmedError(name, from, v.first)
	}
	entries, err := l.read(v, from, int(limit), maxReadBytes)
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, readResponse{Entries: entriesJSON(entries), Next: from + uint64(len(entries)), Log: v.info})
	return nil
}

// configureRequest is the body of PUT /v1/logs/{name}: the limits to set,
// each optional (absent: unchanged; 0: no limit).
type configureRequest struct {
	MaxEntries *uint64 `json:"max_entries"`
	MaxBytes   *uint64 `json:"max_bytes"`
	MaxAge     *string `json:"max_age"`
}

// decodeConfigureRequest reads and validates a PUT body.
func decodeConfigureRequest(body io.Reader) (limits, error) {
	var req configureRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return limits{}, err
	}
	var lim limits
	if req.MaxEntries != nil {
		if *req.MaxEntries > maxLimitValue {
			return limits{}, ErrInvalidLimits.WithMessage("max_entries must be at most %d", uint64(maxLimitValue))
		}
		lim.set |= limitEntries
		lim.maxEntries = *req.MaxEntries
	}
	if req.MaxBytes != nil {
		if *req.MaxBytes > maxLimitValue {
			return limits{}, ErrInvalidLimits.WithMessage("max_bytes must be at most %d", uint64(maxLimitValue))
		}
		lim.set |= limitBytes
		lim.maxBytes = *req.MaxBytes
	}
	if req.MaxAge != nil {
		d, err := time.ParseDuration(*req.MaxAge)
		if err != nil || d < 0 {
			return limits{}, ErrInvalidLimits.WithMessage("max_age must be a duration such as \"72h\" or \"30m\" (0 for no limit), got %q", modules.Echo(*req.MaxAge))
		}
		lim.set |= limitAge
		lim.maxAge = uint64(d)
	}
	return lim, nil
}

// handleConfigure serves PUT /v1/logs/{name}: it sets the log's limits,
// creating it if needed, and answers with the log's description once this
// node applied the change.
func (l *Log) handleConfigure(w http.ResponseWriter, r *http.Request) error {
	name, err := logName(r)
	if err != nil {
		return err
	}
	lim, err := decodeConfigureRequest(r.Body)
	if err != nil {
		return err
	}
	conf := encodeConfigure(configureCmd{log: name, lim: lim})
	op, payload := l.submission(opConfigure, len(conf))
	applied, err := l.host.Raft().Apply(r.Context(), op, append(payload, conf...))
	l.countCap(err)
	if err != nil {
		return fmt.Errorf("configure log %s: %w", name, err)
	}
	w.Header().Set(httpjson.HeaderAppliedIndex, strconv.FormatUint(applied.Index, 10))
	v, ok := l.lookup(name, true)
	if !ok {
		return ErrLogNotFound.WithMessage("log %q was deleted right after it was configured", name)
	}
	httpjson.WriteJSON(w, http.StatusOK, v.info)
	return nil
}

// handleDelete serves DELETE /v1/logs/{name}: the log, its entries and its
// files go on every node; its streams end with a "deleted" event.
func (l *Log) handleDelete(w http.ResponseWriter, r *http.Request) error {
	name, err := logName(r)
	if err != nil {
		return err
	}
	applied, err := l.host.Raft().Apply(r.Context(), opDelete, encodeDelete(name))
	if err != nil {
		return fmt.Errorf("delete log %s: %w", name, err)
	}
	w.Header().Set(httpjson.HeaderAppliedIndex, strconv.FormatUint(applied.Index, 10))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listResponse is the answer to GET /v1/logs.
type listResponse struct {
	Logs []logInfo `json:"logs"`
}

// handleList serves GET /v1/logs from this node's state, sorted by name.
func (l *Log) handleList(w http.ResponseWriter, r *http.Request) error {
	if err := l.barrier(w, r); err != nil {
		return err
	}
	l.mu.RLock()
	infos := l.st.list()
	l.mu.RUnlock()
	httpjson.WriteJSON(w, http.StatusOK, listResponse{Logs: infos})
	return nil
}

// barrier runs the read barrier if ?consistent=true, then sets the
// applied-index header. The header is read before the state, so the state
// served includes at least that index.
func (l *Log) barrier(w http.ResponseWriter, r *http.Request) error {
	if s := r.URL.Query().Get("consistent"); s != "" {
		consistent, err := strconv.ParseBool(s)
		if err != nil {
			return badParam("consistent", "consistent must be true or false, got %q", s)
		}
		if consistent {
			if err := l.host.Raft().ReadIndex(r.Context()); err != nil {
				return fmt.Errorf("consistent log read: %w", err)
			}
		}
	}
	w.Header().Set(httpjson.HeaderAppliedIndex, strconv.FormatUint(l.host.Raft().AppliedIndex(), 10))
	return nil
}

// indexParam parses a log index parameter; empty means absent. Indexes
// start at lowest.
func indexParam(s, param string, lowest uint64) (index uint64, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	index, err = strconv.ParseUint(s, 10, 64)
	if err != nil || index < lowest {
		return 0, false, badParam(param, "%s must be an integer of at least %d, got %q", param, lowest, s)
	}
	return index, true, nil
}

func badParam(param, format string, args ...any) error {
	return ErrInvalidParameter.WithMessage(format, args...).WithDetail("parameter", param)
}

// trimmedError is ErrLogTrimmed for a read at from below first.
func trimmedError(name string, from, first uint64) error {
	return ErrLogTrimmed.WithMessage("log %q has trimmed index %d; its first index is %d", name, from, first).WithDetail("first_index", first)
}

// compactJSON returns data (valid JSON: the body decoder checked it)
// without insignificant white space, so the log stores and serves one
// form. Data with no white space at all, what programs send, is returned
// as it is, without a copy.
func compactJSON(data json.RawMessage) json.RawMessage {
	if !bytes.ContainsAny(data, " \t\r\n") {
		return data
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return data // unreachable: the decoder validated it
	}
	return buf.Bytes()
}
