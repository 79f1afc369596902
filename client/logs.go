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
	Index uint64          `json:"index"`
	ID    string          `json:"id,omitempty"`
	Data  json.RawMessage `json:"data"`
	Time  time.Time       `json:"time,omitzero"`
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

// LogInfo describes one log, from GET /v1/logs.
type LogInfo struct {
	Name       string `json:"name"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Entries    uint64 `json:"entries"`
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
