package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"shoal/internal/httpjson"
)

// Sentinels of the replication module for errors.Is.
var (
	// ErrFileNotFound: the node's copy has no regular file at that path.
	ErrFileNotFound = httpjson.Errorf(http.StatusNotFound, "file_not_found", "no such file")
	// ErrInvalidPath: a path is 1 to 1024 bytes of UTF-8, relative,
	// '/'-separated, without empty, '.' or '..' components and without
	// control characters or backslashes.
	ErrInvalidPath = httpjson.BadRequest("invalid_path", "invalid path")
	// ErrFileTooLarge: the body is larger than one replication frame.
	ErrFileTooLarge = httpjson.Errorf(http.StatusRequestEntityTooLarge, "file_too_large", "the content is too large")
	// ErrNoReplicationLeader: no replication leader is ready; the write was
	// not applied and may be retried.
	ErrNoReplicationLeader = httpjson.Errorf(http.StatusServiceUnavailable, "no_replication_leader", "no replication leader is ready")
	// ErrNotInSync: no live member of the in-sync set can lead; the write
	// was not applied.
	ErrNotInSync = httpjson.Errorf(http.StatusServiceUnavailable, "not_in_sync", "no live member of the in-sync set can lead replication")
	// ErrNotDurable: the write is on the leader's disk but was not
	// acknowledged by enough followers in time; it may be lost in a
	// failover.
	ErrNotDurable = httpjson.Errorf(http.StatusServiceUnavailable, "not_durable", "the write was not acknowledged by enough followers in time")
	// ErrFileChecksum: the bytes GetFile received do not have the SHA-256
	// the node announced in the ETag.
	ErrFileChecksum = errors.New("file checksum mismatch")
)

// FileInfo is a file as a write left it, or as GetFile received it.
type FileInfo struct {
	Path string `json:"path"`
	Size uint64 `json:"size"`
	// SHA256 is the hex SHA-256 of the whole file.
	SHA256 string `json:"sha256,omitempty"`
}

// FileEntry is one file of a listing of a node's copy.
type FileEntry struct {
	Path   string    `json:"path"`
	Size   uint64    `json:"size"`
	SHA256 string    `json:"sha256"`
	Mtime  time.Time `json:"mtime"`
}

// ReplicationStatus is a node's view of directory replication.
type ReplicationStatus struct {
	Node string `json:"node"`
	// Role is "leader", "follower", "not_in_sync" (this node leads Raft
	// and no live member of the in-sync set can lead: no writes are
	// served) or "none".
	Role   string `json:"role"`
	Leader string `json:"leader"`
	// Term is the Raft term of the leader's claim.
	Term uint64 `json:"term"`
	// InSync holds the nodes that hold every acknowledged write.
	InSync []string `json:"in_sync"`
	// Position is the leader's stream position in its current term.
	Position uint64 `json:"position"`
	// Followers is every other server as the leader sees it (asked of the
	// leader when a follower serves the status and the leader answers).
	Followers []ReplicationFollower `json:"followers,omitempty"`
	// Following is this node's own stream when it follows.
	Following *ReplicationFollowing `json:"follower,omitempty"`
	Counters  map[string]uint64     `json:"counters"`
	// Raw is the whole response body as the node sent it.
	Raw json.RawMessage `json:"-"`
}

// ReplicationFollower is one follower as the leader sees it.
type ReplicationFollower struct {
	Node string `json:"node"`
	// State is "syncing", "streaming" or "disconnected".
	State      string  `json:"state"`
	InSync     bool    `json:"in_sync"`
	AckedBytes uint64  `json:"acked_bytes"`
	LagBytes   uint64  `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
}

// ReplicationFollowing is a follower's own view of its stream.
type ReplicationFollowing struct {
	Leader       string    `json:"leader,omitempty"`
	State        string    `json:"state"`
	AppliedBytes uint64    `json:"applied_bytes"`
	Since        time.Time `json:"since"`
}

// UnmarshalJSON decodes the known fields and keeps the body in Raw.
func (s *ReplicationStatus) UnmarshalJSON(b []byte) error {
	type plain ReplicationStatus
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = ReplicationStatus(p)
	s.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// escapeSegments escapes a '/'-separated name segment by segment, so that
// the slashes stay readable; "." and ".." segments are escaped too, so
// that nothing on the way cleans the path.
func escapeSegments(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		switch s {
		case ".":
			segs[i] = "%2E"
		case "..":
			segs[i] = "%2E%2E"
		default:
			segs[i] = url.PathEscape(s)
		}
	}
	return strings.Join(segs, "/")
}

// filePath is the API path of a replicated file.
func filePath(p string) string { return "/v1/files/" + escapeSegments(p) }

// checkPath refuses the empty path locally: its URL would name the list.
func checkPath(p string) error {
	if p == "" {
		return ErrInvalidPath.WithMessage("the path is empty")
	}
	return nil
}

// setBody makes body the request's body without ever closing it (it is
// the caller's). Bodies of a known length (bytes.Buffer, bytes.Reader,
// strings.Reader) are sent with a Content-Length, others chunked.
func setBody(req *http.Request, body io.Reader) {
	req.Header.Set("Content-Type", "application/octet-stream")
	var n int
	switch b := body.(type) {
	case nil:
		return
	case *bytes.Buffer:
		snapshot := b.Bytes()
		n = len(snapshot)
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(snapshot)), nil }
	case *bytes.Reader:
		n = b.Len()
	case *strings.Reader:
		n = b.Len()
	default:
		req.Body, req.ContentLength = io.NopCloser(body), -1
		return
	}
	if n == 0 {
		req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
		return
	}
	req.Body, req.ContentLength = io.NopCloser(body), int64(n)
}

// PutFile replaces the file at path (relative, '/'-separated) with the
// content of body, creating it and its directories. Any node takes the
// write and forwards it to the replication leader; the answer comes once
// the write is durable (see docs/replication.md): ErrNotDurable means it is
// on the leader's disk but may be lost in a failover. A replace is safe to
// repeat. body is read to its end and not closed; it is limited by the
// node's --max-body-bytes. PutFile returns the new size and SHA-256.
func (c *Client) PutFile(ctx context.Context, path string, body io.Reader) (FileInfo, error) {
	fi, err := c.writeFile(ctx, http.MethodPut, path, nil, body)
	if err != nil {
		return FileInfo{}, fmt.Errorf("put file %q: %w", path, err)
	}
	return fi, nil
}

// AppendFile appends the content of body to the file at path, creating it
// and its directories, like PutFile. An append is not idempotent: after an
// error whose outcome is unknown (outcome_unknown, leadership_lost,
// not_durable, a dropped connection) it may or may not be applied.
func (c *Client) AppendFile(ctx context.Context, path string, body io.Reader) (FileInfo, error) {
	fi, err := c.writeFile(ctx, http.MethodPost, path, url.Values{"append": {""}}, body)
	if err != nil {
		return FileInfo{}, fmt.Errorf("append to file %q: %w", path, err)
	}
	return fi, nil
}

func (c *Client) writeFile(ctx context.Context, method, path string, q url.Values, body io.Reader) (FileInfo, error) {
	if err := checkPath(path); err != nil {
		return FileInfo{}, err
	}
	req, err := c.newRequest(ctx, method, filePath(path), q, nil)
	if err != nil {
		return FileInfo{}, err
	}
	setBody(req, body)
	var fi FileInfo
	if err := c.doRequest(req, &fi); err != nil {
		return FileInfo{}, err
	}
	return fi, nil
}

// GetFile streams the node's copy of the file at path into w and returns
// its path, size and SHA-256. It checks the bytes it received against the
// SHA-256 the node announced (ETag) and returns an error wrapping
// ErrFileChecksum when they differ; w has then received them anyway.
// ErrFileNotFound if the node has no such file.
func (c *Client) GetFile(ctx context.Context, path string, w io.Writer) (FileInfo, error) {
	if err := checkPath(path); err != nil {
		return FileInfo{}, fmt.Errorf("get file %q: %w", path, err)
	}
	fi, err := c.getFile(ctx, path, w)
	if err != nil {
		return FileInfo{}, fmt.Errorf("get file %q: %w", path, err)
	}
	return fi, nil
}

func (c *Client) getFile(ctx context.Context, path string, w io.Writer) (FileInfo, error) {
	req, err := c.newRequest(ctx, http.MethodGet, filePath(path), nil, nil)
	if err != nil {
		return FileInfo{}, err
	}
	req.Header.Set("Accept", "application/octet-stream, application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return FileInfo{}, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return FileInfo{}, readError(resp)
	}
	want := strings.Trim(resp.Header.Get("ETag"), `"`)
	var h hash.Hash
	out := &writeRecorder{w: w}
	var dst io.Writer = out
	if want != "" {
		h = sha256.New()
		dst = io.MultiWriter(out, h)
	}
	n, err := io.Copy(dst, resp.Body)
	switch {
	case out.err != nil:
		return FileInfo{}, fmt.Errorf("write file content: %w", out.err)
	case err != nil:
		return FileInfo{}, fmt.Errorf("read file: %w", err)
	}
	fi := FileInfo{Path: path, Size: uint64(n), SHA256: want}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fi, fmt.Errorf("received %d bytes with SHA-256 %s, the node announced %s: %w", n, got, want, ErrFileChecksum)
		}
	}
	return fi, nil
}

// writeRecorder remembers the error of the caller's writer, so that a
// failed write is not reported as a failed read.
type writeRecorder struct {
	w   io.Writer
	err error
}

func (r *writeRecorder) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

// ListFiles lists the files of the node's copy whose path starts with
// prefix (all with ""), sorted by path.
func (c *Client) ListFiles(ctx context.Context, prefix string) ([]FileEntry, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	var out struct {
		Files []FileEntry `json:"files"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/files", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list files with prefix %q: %w", prefix, err)
	}
	if out.Files == nil {
		out.Files = []FileEntry{}
	}
	return out.Files, nil
}

// DeleteFile deletes the file at path (and the directories it leaves
// empty) on every node; ErrFileNotFound if the leader has no such file.
func (c *Client) DeleteFile(ctx context.Context, path string) error {
	if err := checkPath(path); err != nil {
		return fmt.Errorf("delete file %q: %w", path, err)
	}
	if _, err := c.do(ctx, http.MethodDelete, filePath(path), nil, nil, nil); err != nil {
		return fmt.Errorf("delete file %q: %w", path, err)
	}
	return nil
}

// ReplicationStatus returns the node's view of replication: its role, the
// leader, the in-sync set and the followers' progress.
func (c *Client) ReplicationStatus(ctx context.Context) (ReplicationStatus, error) {
	var s ReplicationStatus
	if _, err := c.do(ctx, http.MethodGet, "/v1/replication/status", nil, nil, &s); err != nil {
		return ReplicationStatus{}, fmt.Errorf("get replication status: %w", err)
	}
	return s, nil
}
