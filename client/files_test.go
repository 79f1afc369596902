package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/replication"
)

// newReplicationCluster starts a real cluster of n nodes with the
// replication module and waits until every node is in the in-sync set, so
// that an acknowledged write is on every node.
func newReplicationCluster(t *testing.T, n int) *testcluster.Cluster {
	t.Helper()
	cfg := replication.DefaultConfig()
	cfg.Fsync = false // the tests check the API, not durability
	c := testcluster.New(t, n, testcluster.WithModules("replication"), testcluster.WithModuleConfig("replication", &cfg))
	cl := newClient(t, c.Node(0).URL())
	testcluster.Eventually(t, 30*time.Second, func() error {
		s, err := cl.ReplicationStatus(context.Background())
		if err != nil {
			return err
		}
		if s.Leader == "" || len(s.InSync) != n {
			return fmt.Errorf("leader %q, in-sync set %v, want %d members", s.Leader, s.InSync, n)
		}
		return nil
	})
	return c
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// onlyReader hides every method but Read, so the body is sent chunked.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestFiles_WriteReadListDelete(t *testing.T) {
	c := newReplicationCluster(t, 3)
	ctx := context.Background()
	w := newClient(t, c.Node(1).URL()) // writes through any node
	r := newClient(t, c.Node(2).URL()) // reads another node's copy

	data := make([]byte, 70000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	paths := []string{"plain.txt", "dir/sub/a b.bin", "dir/q?x=1#f%", "dir/ünï/€.txt", "dir/..x/y"}
	for _, p := range paths {
		fi, err := w.PutFile(ctx, p, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("put %q: %v", p, err)
		}
		if fi.Path != p || fi.Size != uint64(len(data)) || fi.SHA256 != sum(data) {
			t.Fatalf("put %q: got %+v, want size %d sha256 %s", p, fi, len(data), sum(data))
		}
		var got bytes.Buffer
		gi, err := r.GetFile(ctx, p, &got)
		if err != nil {
			t.Fatalf("get %q: %v", p, err)
		}
		if !bytes.Equal(got.Bytes(), data) || gi.SHA256 != fi.SHA256 || gi.Size != fi.Size {
			t.Fatalf("get %q: %d bytes %+v, want the %d bytes written", p, got.Len(), gi, len(data))
		}
	}

	// An append of a body of unknown length (chunked), an empty file.
	tail := []byte("tail\n")
	fi, err := w.AppendFile(ctx, "plain.txt", onlyReader{bytes.NewReader(tail)})
	whole := append(slices.Clone(data), tail...)
	if err != nil || fi.Size != uint64(len(whole)) || fi.SHA256 != sum(whole) {
		t.Fatalf("append: %+v, %v; want size %d", fi, err, len(whole))
	}
	if fi, err := w.AppendFile(ctx, "new/log", strings.NewReader("first\n")); err != nil || fi.Size != 6 {
		t.Fatalf("append creating the file: %+v, %v", fi, err)
	}
	if fi, err := w.PutFile(ctx, "empty", nil); err != nil || fi.Size != 0 {
		t.Fatalf("put an empty file: %+v, %v", fi, err)
	}
	var got bytes.Buffer
	if _, err := r.GetFile(ctx, "plain.txt", &got); err != nil || !bytes.Equal(got.Bytes(), whole) {
		t.Fatalf("get after append: %d bytes, %v; want %d", got.Len(), err, len(whole))
	}

	list, err := r.ListFiles(ctx, "dir/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Path)
		if e.Size != uint64(len(data)) || e.SHA256 != sum(data) || e.Mtime.IsZero() {
			t.Fatalf("list entry %+v, want size %d sha256 %s and an mtime", e, len(data), sum(data))
		}
	}
	if want := []string{"dir/..x/y", "dir/q?x=1#f%", "dir/sub/a b.bin", "dir/ünï/€.txt"}; !slices.Equal(names, want) {
		t.Fatalf("list dir/: got %q, want %q", names, want)
	}
	if all, err := r.ListFiles(ctx, ""); err != nil || len(all) != len(paths)+2 {
		t.Fatalf("list all: %d entries, %v; want %d", len(all), err, len(paths)+2)
	}
	if none, err := r.ListFiles(ctx, "nothing/"); err != nil || none == nil || len(none) != 0 {
		t.Fatalf("list of an empty prefix: %#v, %v; want an empty list", none, err)
	}

	if err := w.DeleteFile(ctx, "dir/sub/a b.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetFile(ctx, "dir/sub/a b.bin", io.Discard); !errors.Is(err, client.ErrFileNotFound) {
		t.Fatalf("get after delete: %v, want file_not_found", err)
	}
	if err := w.DeleteFile(ctx, "dir/sub/a b.bin"); !errors.Is(err, client.ErrFileNotFound) {
		t.Fatalf("delete twice: %v, want file_not_found", err)
	}

	// Paths the node refuses, never cleaned on the way: "a/./b" is not
	// "a/b".
	for _, p := range []string{"../x", "a/./b", "a//b", "/abs", "a/.."} {
		if _, err := w.PutFile(ctx, p, strings.NewReader("x")); !errors.Is(err, client.ErrInvalidPath) {
			t.Fatalf("put %q: %v, want invalid_path", p, err)
		}
	}
	if _, err := w.PutFile(ctx, "", strings.NewReader("x")); !errors.Is(err, client.ErrInvalidPath) {
		t.Fatalf("put of the empty path: %v, want invalid_path", err)
	}
	if _, err := r.ListFiles(ctx, "/abs"); err == nil {
		t.Fatal("list with an absolute prefix: no error")
	}
	if all, _ := r.ListFiles(ctx, ""); slices.ContainsFunc(all, func(e client.FileEntry) bool { return e.Path == "a/b" }) {
		t.Fatal(`a refused "a/./b" wrote "a/b"`)
	}
}

func TestFiles_ReplicationStatus(t *testing.T) {
	c := newReplicationCluster(t, 3)
	ctx := context.Background()
	var leader, follower client.ReplicationStatus
	testcluster.Eventually(t, 30*time.Second, func() error {
		leader, follower = client.ReplicationStatus{}, client.ReplicationStatus{}
		for _, n := range c.Nodes() {
			s, err := newClient(t, n.URL()).ReplicationStatus(ctx)
			if err != nil {
				return err
			}
			switch s.Role {
			case "leader":
				leader = s
			case "follower":
				follower = s
			}
		}
		switch {
		case leader.Node == "" || follower.Node == "":
			return fmt.Errorf("no leader or no follower yet")
		case len(leader.Followers) != 2 || len(follower.Followers) != 2:
			return fmt.Errorf("followers: %+v seen from the leader, %+v from a follower", leader.Followers, follower.Followers)
		case follower.Following == nil || follower.Following.State != "streaming":
			return fmt.Errorf("the follower's own stream: %+v", follower.Following)
		}
		for _, f := range leader.Followers {
			if f.State != "streaming" || !f.InSync {
				return fmt.Errorf("follower %+v, want streaming and in sync", f)
			}
		}
		return nil
	})
	if follower.Leader != leader.Node || leader.Leader != leader.Node || len(leader.InSync) != 3 || leader.Term == 0 {
		t.Fatalf("leader %+v, follower %+v", leader, follower)
	}
	if !bytes.Contains(follower.Raw, []byte(`"in_sync"`)) || follower.Counters == nil {
		t.Fatalf("raw %s, counters %v", follower.Raw, follower.Counters)
	}
}

// TestFiles_GetChecksMismatch: bytes that do not match the ETag are an
// error, after they were written.
func TestFiles_GetChecksMismatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() != "/v1/files/a/%2E/b%20c" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+sum([]byte("other"))+`"`)
		io.WriteString(w, "content")
	}))
	t.Cleanup(srv.Close)
	var got bytes.Buffer
	_, err := newClient(t, srv.URL).GetFile(context.Background(), "a/./b c", &got)
	if !errors.Is(err, client.ErrFileChecksum) || got.String() != "content" {
		t.Fatalf("got %q, %v; want the content and a checksum error", got.String(), err)
	}
}
