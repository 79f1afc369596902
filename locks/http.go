package locks

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// Routes mounts the module's routes on the /v1 router. Handlers run
// concurrently with each other and with the state machine.
func (l *Locks) Routes(r chi.Router) {
	l.init()
	r.Route("/semaphores", func(r chi.Router) {
		r.Get("/", httpjson.Handle(l.handleListSemaphores))
		r.Put("/{name}", httpjson.Handle(l.handleCreate))
		r.Get("/{name}", httpjson.Handle(l.handleSemaphore))
		r.Delete("/{name}", httpjson.Handle(l.handleDelete))
		r.Post("/{name}/acquire", httpjson.Handle(l.handleAcquire(kindSemaphore)))
		r.Post("/{name}/release", httpjson.Handle(l.handleRelease(kindSemaphore)))
		r.Post("/{name}/renew", httpjson.Handle(l.handleRenew(kindSemaphore)))
	})
	r.Route("/locks", func(r chi.Router) {
		r.Get("/", httpjson.Handle(l.handleListLocks))
		r.Get("/{name}", httpjson.Handle(l.handleLock))
		r.Post("/{name}/acquire", httpjson.Handle(l.handleAcquire(kindLock)))
		r.Post("/{name}/release", httpjson.Handle(l.handleRelease(kindLock)))
		r.Post("/{name}/renew", httpjson.Handle(l.handleRenew(kindLock)))
	})
}

// nameParam returns the validated {name} URL parameter.
func nameParam(r *http.Request, k kind) (string, error) {
	name := chi.URLParam(r, "name")
	if !modules.ValidAPIName(name) {
		return "", ErrInvalidName.WithMessage("invalid %s name %q: a name is 1 to %d bytes of letters, digits, '.', '_' and '-', and not . or ..", k, modules.Echo(name), maxNameLen)
	}
	return name, nil
}

// Request bodies. Durations are Go duration strings ("15s", "1m30s");
// they are decoded as raw JSON so that a bad one gets its own error code.

type createRequest struct {
	Limit *int64 `json:"limit"`
}

type acquireRequest struct {
	Holder      string          `json:"holder"`
	Mode        *string         `json:"mode"`
	TTL         json.RawMessage `json:"ttl"`
	Wait        json.RawMessage `json:"wait"`
	CreateLimit *int64          `json:"create_limit"`
	Retries     *int64          `json:"retries"`
	MinWait     json.RawMessage `json:"min_wait"`
	MaxWait     json.RawMessage `json:"max_wait"`
}

type holderRequest struct {
	Holder string          `json:"holder"`
	TTL    json.RawMessage `json:"ttl"`
}

// acquireParams is a validated acquire request.
type acquireParams struct {
	holder           string
	mode             mode
	ttl, wait        time.Duration
	createLimit      int
	retries          int
	minWait, maxWait time.Duration
}

// Retry defaults and bounds (Clusterluck's minWaitTimeout/maxWaitTimeout).
const (
	defaultMinWait = 10 * time.Millisecond
	defaultMaxWait = 100 * time.Millisecond
	maxRetries     = 1000
)

// duration parses an optional duration field; absent or null is def.
func duration(raw json.RawMessage, field string, def time.Duration) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, ErrInvalidDuration.WithMessage("%s must be a duration string such as \"15s\", got %s", field, raw).WithDetail("field", field)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, ErrInvalidDuration.WithMessage("%s %q is not a duration such as \"15s\" or \"1m30s\"", field, s).WithDetail("field", field)
	}
	return d, nil
}

func checkHolder(id string) error {
	if !validHolder(id) {
		if len(id) > maxHolderLen {
			return ErrInvalidHolder.WithMessage("the holder is %d bytes; the limit is %d", len(id), maxHolderLen)
		}
		return ErrInvalidHolder.WithMessage("holder %q is not 1 to %d bytes of UTF-8 text without control characters", id, maxHolderLen)
	}
	return nil
}

// ttl parses and bounds a required ttl field.
func (c Config) ttl(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, ErrInvalidTTL.WithMessage("a ttl is required, from %s to %s", c.MinTTL, c.MaxTTL)
	}
	d, err := duration(raw, "ttl", 0)
	if err != nil {
		return 0, err
	}
	if d < c.MinTTL || d > c.MaxTTL {
		return 0, ErrInvalidTTL.WithMessage("ttl %s is outside %s to %s (--locks-min-ttl, --locks-max-ttl)", d, c.MinTTL, c.MaxTTL)
	}
	return d, nil
}

// decodeAcquireBody reads and validates an acquire body for a semaphore
// (k = kindSemaphore: no mode, optional create_limit) or a lock (mode
// "read" or "write", default "write"; no create_limit). Errors are
// *httpjson.Error values with status 400.
func decodeAcquireBody(k kind, body io.Reader, cfg Config) (acquireParams, error) {
	var req acquireRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return acquireParams{}, err
	}
	p := acquireParams{holder: req.Holder}
	if err := checkHolder(req.Holder); err != nil {
		return acquireParams{}, err
	}
	switch {
	case k == kindSemaphore && req.Mode != nil:
		return acquireParams{}, ErrInvalidMode.WithMessage("a semaphore has no mode; use /v1/locks for read/write locks")
	case k == kindLock && req.CreateLimit != nil:
		return acquireParams{}, ErrInvalidLimit.WithMessage("a lock has no limit; create_limit is for semaphores")
	case k == kindSemaphore:
		p.mode = modeSlot
	case req.Mode == nil || *req.Mode == "write":
		p.mode = modeWrite
	case *req.Mode == "read":
		p.mode = modeRead
	default:
		return acquireParams{}, ErrInvalidMode.WithMessage("mode must be \"read\" or \"write\", got %q", *req.Mode)
	}
	var err error
	if p.ttl, err = cfg.ttl(req.TTL); err != nil {
		return acquireParams{}, err
	}
	if p.wait, err = duration(req.Wait, "wait", 0); err != nil {
		return acquireParams{}, err
	}
	if p.wait < 0 || p.wait > cfg.MaxWait {
		return acquireParams{}, ErrInvalidWait.WithMessage("wait %s is outside 0 to %s (--locks-max-wait)", p.wait, cfg.MaxWait)
	}
	if req.CreateLimit != nil {
		if *req.CreateLimit < 1 || *req.CreateLimit > maxLimit {
			return acquireParams{}, ErrInvalidLimit.WithMessage("create_limit must be from 1 to %d, got %d", maxLimit, *req.CreateLimit)
		}
		p.createLimit = int(*req.CreateLimit)
	}
	if req.Retries != nil {
		if *req.Retries < 0 || *req.Retries > maxRetries {
			return acquireParams{}, ErrInvalidRetry.WithMessage("retries must be from 0 to %d, got %d", maxRetries, *req.Retries)
		}
		p.retries = int(*req.Retries)
	}
	if p.minWait, err = duration(req.MinWait, "min_wait", min(defaultMinWait, cfg.MaxWait)); err != nil {
		return acquireParams{}, err
	}
	if p.maxWait, err = duration(req.MaxWait, "max_wait", min(max(defaultMaxWait, p.minWait), cfg.MaxWait)); err != nil {
		return acquireParams{}, err
	}
	if p.minWait < 0 || p.maxWait < p.minWait || p.maxWait > cfg.MaxWait {
		return acquireParams{}, ErrInvalidRetry.WithMessage("min_wait %s and max_wait %s must satisfy 0 <= min_wait <= max_wait <= %s", p.minWait, p.maxWait, cfg.MaxWait)
	}
	return p, nil
}

// decodeCreateBody reads a PUT body: {"limit": n}.
func decodeCreateBody(body io.Reader) (int, error) {
	var req createRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, err
	}
	if req.Limit == nil || *req.Limit < 1 || *req.Limit > maxLimit {
		got := "none"
		if req.Limit != nil {
			got = strconv.FormatInt(*req.Limit, 10)
		}
		return 0, ErrInvalidLimit.WithMessage("limit must be an integer from 1 to %d, got %s", maxLimit, got)
	}
	return int(*req.Limit), nil
}

// decodeHolderBody reads a release body ({"holder"}; withTTL false) or a
// renew body ({"holder","ttl"}).
func decodeHolderBody(body io.Reader, withTTL bool, cfg Config) (string, time.Duration, error) {
	var req holderRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return "", 0, err
	}
	if err := checkHolder(req.Holder); err != nil {
		return "", 0, err
	}
	if !withTTL {
		if len(req.TTL) != 0 {
			return "", 0, httpjson.ErrBadJSON.WithMessage("a release takes no ttl")
		}
		return req.Holder, 0, nil
	}
	ttl, err := cfg.ttl(req.TTL)
	return req.Holder, ttl, err
}

// Responses.

type leaseResponse struct {
	Token     uint64 `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

type holderJSON struct {
	Holder    string `json:"holder"`
	Mode      string `json:"mode,omitempty"`
	Token     uint64 `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

type semaphoreJSON struct {
	Name    string       `json:"name"`
	Limit   int          `json:"limit"`
	Active  int          `json:"active"`
	Holders []holderJSON `json:"holders"`
	Waiting int          `json:"waiting"`
}

type semaphoreSummary struct {
	Name    string `json:"name"`
	Limit   int    `json:"limit"`
	Active  int    `json:"active"`
	Waiting int    `json:"waiting"`
}

type lockJSON struct {
	Name    string       `json:"name"`
	Mode    string       `json:"mode"` // unlocked, read or write
	Active  int          `json:"active"`
	Holders []holderJSON `json:"holders"`
	Waiting int          `json:"waiting"`
}

type lockSummary struct {
	Name    string `json:"name"`
	Mode    string `json:"mode"`
	Active  int    `json:"active"`
	Waiting int    `json:"waiting"`
}

// formatTime formats command time (Unix nanoseconds) for the API.
func formatTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func (s *sem) holdersJSON() []holderJSON {
	out := make([]holderJSON, 0, len(s.holders))
	for _, h := range s.sortedHolders() {
		j := holderJSON{Holder: h.id, Token: h.token, ExpiresAt: formatTime(h.expires)}
		if s.kind == kindLock {
			j.Mode = h.mode.String()
		}
		out = append(out, j)
	}
	return out
}

func (s *sem) lockMode() string {
	switch {
	case s == nil || len(s.holders) == 0:
		return "unlocked"
	case s.writers > 0:
		return "write"
	default:
		return "read"
	}
}

// handleCreate serves PUT /v1/semaphores/{name}: 201 when created, 200 when
// it exists with that limit (or ?update changed it), 409 limit_conflict.
func (l *Locks) handleCreate(w http.ResponseWriter, r *http.Request) error {
	name, err := nameParam(r, kindSemaphore)
	if err != nil {
		return err
	}
	update, err := boolParam(r, "update")
	if err != nil {
		return err
	}
	limit, err := decodeCreateBody(r.Body)
	if err != nil {
		return err
	}
	op, payload := l.capped(opCreate, encodeCreate(createCmd{name: name, limit: limit, update: update}))
	applied, err := l.host.Raft().Apply(r.Context(), op, payload)
	l.countCap(err)
	if err != nil {
		return fmt.Errorf("create semaphore %s: %w", name, err)
	}
	res, err := decodeByteResult(applied.Result, byte(createdUpdated), "create result")
	if err != nil || res == 0 {
		return fmt.Errorf("create semaphore %s at raft index %d: bad result %x: %w", name, applied.Index, applied.Result, ErrMalformedCommand)
	}
	status := http.StatusOK
	if createResult(res) == createdNew {
		status = http.StatusCreated
	}
	httpjson.WriteJSON(w, status, map[string]any{"name": name, "limit": limit})
	return nil
}

// handleDelete serves DELETE /v1/semaphores/{name}.
func (l *Locks) handleDelete(w http.ResponseWriter, r *http.Request) error {
	name, err := nameParam(r, kindSemaphore)
	if err != nil {
		return err
	}
	applied, err := l.host.Raft().Apply(r.Context(), opDelete, encodeDelete(deleteCmd{name: name}))
	if err != nil {
		return fmt.Errorf("delete semaphore %s: %w", name, err)
	}
	res, err := decodeDeleteResult(applied.Result)
	if err != nil {
		return fmt.Errorf("delete semaphore %s at raft index %d: %w", name, applied.Index, err)
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"name": name, "released": res.released, "failed_waiters": res.failed})
	return nil
}

// handleSemaphore serves GET /v1/semaphores/{name} from this node's state.
func (l *Locks) handleSemaphore(w http.ResponseWriter, r *http.Request) error {
	name, err := nameParam(r, kindSemaphore)
	if err != nil {
		return err
	}
	if err := l.barrier(w, r); err != nil {
		return err
	}
	l.mu.RLock()
	s := l.st.sems[name]
	var out semaphoreJSON
	if s != nil {
		out = semaphoreJSON{Name: name, Limit: s.limit, Active: len(s.holders), Holders: s.holdersJSON(), Waiting: len(s.queue)}
	}
	l.mu.RUnlock()
	if s == nil {
		return ErrNotFound.WithMessage("semaphore %q does not exist", name)
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
	return nil
}

// handleListSemaphores serves GET /v1/semaphores, sorted by name.
func (l *Locks) handleListSemaphores(w http.ResponseWriter, r *http.Request) error {
	if err := l.barrier(w, r); err != nil {
		return err
	}
	l.mu.RLock()
	out := make([]semaphoreSummary, 0, len(l.st.sems))
	for _, s := range l.st.sems {
		out = append(out, semaphoreSummary{Name: s.name, Limit: s.limit, Active: len(s.holders), Waiting: len(s.queue)})
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b semaphoreSummary) int { return strings.Compare(a.Name, b.Name) })
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"semaphores": out})
	return nil
}

// handleLock serves GET /v1/locks/{name}. A lock nobody holds or waits
// for is unlocked (and not stored).
func (l *Locks) handleLock(w http.ResponseWriter, r *http.Request) error {
	name, err := nameParam(r, kindLock)
	if err != nil {
		return err
	}
	if err := l.barrier(w, r); err != nil {
		return err
	}
	l.mu.RLock()
	s := l.st.locks[name]
	out := lockJSON{Name: name, Mode: s.lockMode(), Holders: []holderJSON{}}
	if s != nil {
		out.Active, out.Holders, out.Waiting = len(s.holders), s.holdersJSON(), len(s.queue)
	}
	l.mu.RUnlock()
	httpjson.WriteJSON(w, http.StatusOK, out)
	return nil
}

// handleListLocks serves GET /v1/locks: the locks held or waited for.
func (l *Locks) handleListLocks(w http.ResponseWriter, r *http.Request) error {
	if err := l.barrier(w, r); err != nil {
		return err
	}
	l.mu.RLock()
	out := make([]lockSummary, 0, len(l.st.locks))
	for _, s := range l.st.locks {
		out = append(out, lockSummary{Name: s.name, Mode: s.lockMode(), Active: len(s.holders), Waiting: len(s.queue)})
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b lockSummary) int { return strings.Compare(a.Name, b.Name) })
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"locks": out})
	return nil
}

// handleRelease serves POST /v1/{semaphores,locks}/{name}/release.
func (l *Locks) handleRelease(k kind) httpjson.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r, k)
		if err != nil {
			return err
		}
		holderID, _, err := decodeHolderBody(r.Body, false, l.cfg)
		if err != nil {
			return err
		}
		applied, err := l.host.Raft().Apply(r.Context(), opRelease, encodeRelease(releaseCmd{kind: k, name: name, holder: holderID}))
		if err != nil {
			return fmt.Errorf("release %s %s: %w", k, name, err)
		}
		res, err := decodeByteResult(applied.Result, byte(releasedHold|releasedWait), "release result")
		if err != nil || res == 0 {
			return fmt.Errorf("release %s %s at raft index %d: bad result %x: %w", k, name, applied.Index, applied.Result, ErrMalformedCommand)
		}
		l.m.releases.Inc()
		httpjson.WriteJSON(w, http.StatusOK, map[string]any{"released": releaseResult(res)&releasedHold != 0})
		return nil
	}
}

// handleRenew serves POST /v1/{semaphores,locks}/{name}/renew.
func (l *Locks) handleRenew(k kind) httpjson.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r, k)
		if err != nil {
			return err
		}
		holderID, ttl, err := decodeHolderBody(r.Body, true, l.cfg)
		if err != nil {
			return err
		}
		applied, err := l.host.Raft().Apply(r.Context(), opRenew, encodeRenew(renewCmd{kind: k, name: name, holder: holderID, ttl: ttl}))
		if err != nil {
			return fmt.Errorf("renew %s %s: %w", k, name, err)
		}
		res, err := decodeAcquireResult(applied.Result)
		if err == nil && !res.granted {
			err = fmt.Errorf("renew result without a lease: %w", ErrMalformedCommand)
		}
		if err != nil {
			return fmt.Errorf("renew %s %s at raft index %d: %w", k, name, applied.Index, err)
		}
		httpjson.WriteJSON(w, http.StatusOK, leaseResponse{Token: res.token, ExpiresAt: formatTime(res.expires)})
		return nil
	}
}

// barrier runs the read barrier if ?consistent=true, then sets the
// applied-index header. The header is read before the state, so the state
// served includes at least that index.
func (l *Locks) barrier(w http.ResponseWriter, r *http.Request) error {
	consistent, err := boolParam(r, "consistent")
	if err != nil {
		return err
	}
	if consistent {
		if err := l.host.Raft().ReadIndex(r.Context()); err != nil {
			return fmt.Errorf("consistent read: %w", err)
		}
	}
	w.Header().Set(httpjson.HeaderAppliedIndex, strconv.FormatUint(l.host.Raft().AppliedIndex(), 10))
	return nil
}

// boolParam parses a boolean query parameter; present without a value
// ("?update") means true.
func boolParam(r *http.Request, param string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(param) {
		return false, nil
	}
	s := q.Get(param)
	if s == "" {
		return true, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, ErrInvalidParameter.WithMessage("%s must be true or false, got %q", param, s).WithDetail("parameter", param)
	}
	return v, nil
}
