package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"shoal/internal/httpjson"
)

// AppliedIndexHeader is the response header in which a node reports the
// Raft index it had applied when it answered a read. It is
// httpjson.HeaderAppliedIndex, kept under this name for the client's users.
const AppliedIndexHeader = httpjson.HeaderAppliedIndex

// Entry is one entry to publish. An empty ID publishes without
// deduplication; a repeated ID returns the index of the first publish.
type Entry struct {
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data"`
}

// LogEntry is one entry read back from a log.
type LogEntry struct {
	Index uint64 `json:"index"`
	// ID is "" for an entry published without one; it is always encoded,
	// as the API does, so `shoal log read -o json` prints the API's fields.
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
	Time time.Time       `json:"time,omitzero"`
}

// PublishResult is the outcome of Publish.
type PublishResult struct {
	Index uint64 `json:"index"`
	// Duplicate reports that an entry with the same ID was already in the
	// log at Index, and nothing new was appended.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ReadResult is one page of a log read.
type ReadResult struct {
	Entries []LogEntry `json:"entries"`
	// Next is the index to pass as from to read the following page.
	Next uint64 `json:"next"`
	// AppliedIndex is the node's applied Raft index when it answered (from
	// the X-Shoal-Applied-Index header), or 0 when the node did not say.
	AppliedIndex uint64 `json:"-"`
}

// LogInfo describes one log, from GET /v1/logs and PUT /v1/logs/{name}.
type LogInfo struct {
	Name       string `json:"name"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Entries    uint64 `json:"entries"`
	// Bytes is the size of the log on the node's disk; 0 from a node that
	// does not report it.
	Bytes int64 `json:"bytes,omitempty"`
	// MaxEntries, MaxBytes and MaxAge are the log's retention; 0 means no
	// limit (and is what a node without per-log retention reports).
	MaxEntries int64    `json:"max_entries,omitempty"`
	MaxBytes   int64    `json:"max_bytes,omitempty"`
	MaxAge     Duration `json:"max_age,omitzero"`
}

// Duration is a time.Duration that travels in JSON as Go's duration
// string ("24h0m0s"), as the API writes durations.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string; "" and null mean 0. A number is
// taken as nanoseconds, as encoding/json writes a time.Duration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ns int64
	if err := json.Unmarshal(b, &ns); err == nil {
		*d = Duration(ns)
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"24h0m0s\": %w", err)
	}
	if s == nil || *s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(*s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// LogRetention is the retention of one log, for ConfigureLog. A nil field
// is left as it is; a zero one means "no limit". The fields are pointers
// so that "not given" and "no limit" differ on the wire:
//
//	client.LogRetention{MaxEntries: new(int64(100_000)), MaxAge: new(24 * time.Hour)}
type LogRetention struct {
	MaxEntries *int64         `json:"max_entries,omitempty"`
	MaxBytes   *int64         `json:"max_bytes,omitempty"`
	MaxAge     *time.Duration `json:"-"`
}

// MarshalJSON writes the fields that are set, max_age as a duration
// string.
func (r LogRetention) MarshalJSON() ([]byte, error) {
	type plain LogRetention
	out := struct {
		plain
		MaxAge *string `json:"max_age,omitempty"`
	}{plain: plain(r)}
	if r.MaxAge != nil {
		s := r.MaxAge.String()
		out.MaxAge = &s
	}
	return json.Marshal(out)
}

func logPath(name string) string { return "/v1/logs/" + escape(name) }

// Publish appends data to the log called name, with an optional
// deduplication id. It returns once the entry is committed.
func (c *Client) Publish(ctx context.Context, name, id string, data json.RawMessage) (PublishResult, error) {
	var res PublishResult
	if _, err := c.do(ctx, http.MethodPost, logPath(name), nil, Entry{ID: id, Data: data}, &res); err != nil {
		return PublishResult{}, fmt.Errorf("publish to log %q: %w", name, err)
	}
	return res, nil
}

// PublishBatch appends entries to the log called name in one Raft command
// and returns their indexes, in the order of entries.
func (c *Client) PublishBatch(ctx context.Context, name string, entries []Entry) (BatchResult, error) {
	in := struct {
		Entries []Entry `json:"entries"`
	}{entries}
	var out BatchResult
	if _, err := c.do(ctx, http.MethodPost, logPath(name), nil, in, &out); err != nil {
		return BatchResult{}, fmt.Errorf("publish batch to log %q: %w", name, err)
	}
	if len(out.Indexes) != len(entries) {
		return out, fmt.Errorf("publish batch to log %q: got %d indexes for %d entries", name, len(out.Indexes), len(entries))
	}
	if out.Duplicates == nil {
		out.Duplicates = make([]bool, len(out.Indexes))
	}
	return out, nil
}

// BatchResult is the outcome of PublishBatch: the index of each entry, in
// order, and whether it was a duplicate of an earlier publish with its id.
type BatchResult struct {
	Indexes    []uint64 `json:"indexes"`
	Duplicates []bool   `json:"duplicates"`
}

// Read returns up to limit entries of the log called name, starting at
// index from. A limit of 0 lets the node choose its default page size.
// With consistent set, the node confirms its leadership (or forwards to
// the leader) before reading, so the read sees every committed write;
// otherwise the read is served from the node's local state.
func (c *Client) Read(ctx context.Context, name string, from, limit uint64, consistent bool) (ReadResult, error) {
	q := url.Values{}
	if from > 0 { // 0: the node starts at the log's first index
		q.Set("from", strconv.FormatUint(from, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.FormatUint(limit, 10))
	}
	if consistent {
		q.Set("consistent", "true")
	}
	var res ReadResult
	h, err := c.do(ctx, http.MethodGet, logPath(name), q, nil, &res)
	if err != nil {
		return ReadResult{}, fmt.Errorf("read log %q: %w", name, err)
	}
	res.AppliedIndex = appliedIndex(h)
	return res, nil
}

// appliedIndex parses the applied-index header; 0 when missing or invalid.
func appliedIndex(h http.Header) uint64 {
	n, err := strconv.ParseUint(h.Get(httpjson.HeaderAppliedIndex), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// DeleteLog deletes the log called name and its entries. It returns an
// error matching ErrLogNotFound if there is no such log.
func (c *Client) DeleteLog(ctx context.Context, name string) error {
	if _, err := c.do(ctx, http.MethodDelete, logPath(name), nil, nil, nil); err != nil {
		return fmt.Errorf("delete log %q: %w", name, err)
	}
	return nil
}

// ConfigureLog sets the retention of the log called name, creating the
// log if it does not exist, and returns the log as the node then holds
// it. Only the fields of r that are set change.
func (c *Client) ConfigureLog(ctx context.Context, name string, r LogRetention) (LogInfo, error) {
	var info LogInfo
	if _, err := c.do(ctx, http.MethodPut, logPath(name), nil, r, &info); err != nil {
		return LogInfo{}, fmt.Errorf("configure log %q: %w", name, err)
	}
	return info, nil
}

// Logs lists the logs the node knows.
func (c *Client) Logs(ctx context.Context) ([]LogInfo, error) {
	var out struct {
		Logs []LogInfo `json:"logs"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/logs", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	return out.Logs, nil
}
