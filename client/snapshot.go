package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"shoal/internal/httpjson"
)

// SnapshotInfo is a backup's header (GET/PUT /v1/snapshot, shoal snapshot
// inspect).
type SnapshotInfo struct {
	Node    string         `json:"node"`
	Index   uint64         `json:"index"`
	Term    uint64         `json:"term"`
	Created time.Time      `json:"created"`
	Version string         `json:"version"`
	Modules map[string]int `json:"modules"`
	// Sections are the modules outside Raft whose data it holds (kv).
	Sections []string `json:"sections,omitempty"`
	Size     int64    `json:"size,omitempty"`
	SHA256   string   `json:"sha256,omitempty"`
}

// SaveSnapshot writes a backup of every Raft module's state, as the node
// holds it after a read barrier, to w, and returns the number of bytes.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/snapshot", nil, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/octet-stream, application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("save snapshot: %w", err)
	}
	defer closeBody(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("save snapshot: %w", readError(resp))
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d bytes of %d: %w", n, resp.ContentLength, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return n, fmt.Errorf("save snapshot: %w", err)
	}
	return n, nil
}

// RestoreSnapshot sends the backup in the file at path to the leader,
// which installs it through Raft on every node: every Raft module's state
// is replaced. A node that is not the leader names it, and the backup is
// sent there (once).
func (c *Client) RestoreSnapshot(ctx context.Context, path string) (SnapshotInfo, error) {
	info, err := c.restoreSnapshot(ctx, path)
	var he *httpjson.Error
	if errors.As(err, &he) && he.Code == "not_leader" {
		if addr, ok := he.Details["leader_http_addr"].(string); ok && addr != "" {
			other := *c
			u := *c.base
			u.Host = addr
			other.base = &u
			info, err = other.restoreSnapshot(ctx, path)
		}
	}
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore snapshot: %w", err)
	}
	return info, nil
}

func (c *Client) restoreSnapshot(ctx context.Context, path string) (SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer f.Close()
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/snapshot", url.Values{}, nil)
	if err != nil {
		return SnapshotInfo{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return SnapshotInfo{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Body, req.ContentLength = f, fi.Size()
	var out struct {
		Restored SnapshotInfo `json:"restored"`
	}
	if err := c.doRequest(req, &out); err != nil {
		return SnapshotInfo{}, err
	}
	return out.Restored, nil
}
