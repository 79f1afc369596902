package replication

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// openRaw opens a replication stream to the leader from a follower's
// module, as a follower would, but lets the test speak the protocol.
func openRaw(t *testing.T, c *testcluster.Cluster) (net.Conn, *Replication) {
	t.Helper()
	leader := replLeader(t, c)
	from := c.Node((leader.Index + 1) % 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := module(t, from).host.Cluster().OpenStream(ctx, leader.Name, streamName)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, module(t, leader)
}

func tryHandshake(conn net.Conn) (*bufio.Reader, error) {
	if _, err := conn.Write(appendHeader(nil)); err != nil {
		return nil, err
	}
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(conn, hdr); err != nil || checkHeader(hdr) != nil {
		return nil, fmt.Errorf("leader's header %q: %v", hdr, err)
	}
	br := bufio.NewReader(conn)
	for {
		f, err := readFrame(br)
		if err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
		if f.typ == frameIndexEnd {
			return br, nil
		}
	}
}

// session opens a raw stream to the replication leader and completes the
// handshake. The raw stream speaks for a node whose real follower also
// streams from the leader, and the leader keeps one stream per follower:
// when the real one reconnects and takes the place back, the raw one is
// closed, and the session is opened again.
func session(t *testing.T, c *testcluster.Cluster) (net.Conn, *bufio.Reader, *Replication) {
	t.Helper()
	var (
		conn net.Conn
		br   *bufio.Reader
		lm   *Replication
	)
	testcluster.Eventually(t, 20*time.Second, func() error {
		var err error
		conn, lm = openRaw(t, c)
		if br, err = tryHandshake(conn); err != nil {
			_ = conn.Close()
			return err
		}
		return nil
	})
	return conn, br, lm
}

// waitClosed reads until the leader closes the stream.
func waitClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	for {
		if _, err := readFrame(br); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the leader did not close the stream")
			}
			return
		}
	}
}

// TestCluster_StreamRefusals speaks the protocol wrongly to the leader: a
// wrong header is answered with the leader's header and the stream closed;
// a corrupt frame and a request for a path outside the directory close the
// stream; a request through a symbolic link that leads outside is answered
// "gone". The cluster keeps replicating throughout.
func TestCluster_StreamRefusals(t *testing.T) {
	logs := new(syncBuffer)
	c := testcluster.New(t, 3, testcluster.WithModules("replication"),
		testcluster.WithModuleConfig("replication", testConfig()), testcluster.WithLogs(logs))
	waitInSync(t, c, 3)
	mustWrite(t, c.Node(0), "PUT", "/v1/files/a", []byte("content"))

	t.Run("wrong header", func(t *testing.T) {
		conn, lm := openRaw(t, c)
		before := lm.refused.Load()
		if _, err := conn.Write([]byte("GET / HTTP/1")); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("read: %v", err)
		}
		if !bytes.Equal(got, appendHeader(nil)) {
			t.Fatalf("got %q, want the leader's header and the end of the stream", got)
		}
		if lm.refused.Load() != before+1 {
			t.Fatalf("refused streams %d, want %d", lm.refused.Load(), before+1)
		}
		waitLogged(t, logs, "refused a replication stream")
	})
	t.Run("corrupt frame", func(t *testing.T) {
		conn, br, _ := session(t, c)
		b, _ := appendFrame(nil, frame{typ: frameWant, path: "a"})
		b[len(b)-1] ^= 0xff
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, br)
		waitLogged(t, logs, "bad replication frame: checksum")
	})
	t.Run("truncated frame", func(t *testing.T) {
		conn, br, _ := session(t, c)
		b, _ := appendFrame(nil, frame{typ: frameWant, path: "a"})
		if _, err := conn.Write(b[:len(b)-3]); err != nil {
			t.Fatal(err)
		}
		_ = br
		_ = conn.Close() // the leader reads a frame cut short
		waitLogged(t, logs, "unexpected EOF")
	})
	t.Run("path traversal", func(t *testing.T) {
		conn, br, _ := session(t, c)
		b, _ := appendFrame(nil, frame{typ: frameWant, path: "../../../../etc/passwd"})
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, br)
		waitLogged(t, logs, `invalid path \"../../../../etc/passwd\"`)
	})
	t.Run("symlink out of the directory", func(t *testing.T) {
		outside := t.TempDir()
		if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		lm := module(t, replLeader(t, c))
		if err := os.Symlink(outside, filepath.Join(lm.cfg.Dir, "link")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(filepath.Join(lm.cfg.Dir, "link")) })
		conn, br, _ := session(t, c)
		for _, f := range []frame{{typ: frameWant, path: "link/secret"}, {typ: frameWantDone}} {
			b, _ := appendFrame(nil, f)
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		f, err := readFrame(br)
		if err != nil || f.typ != frameFileGone {
			t.Fatalf("got frame %#x (%v), want fileGone", f.typ, err)
		}
	})
	// The cluster still replicates.
	mustWrite(t, c.Node(1), "POST", "/v1/files/a?append", []byte(" more"))
	waitInSync(t, c, 3)
	waitConverged(t, c, nil)
}

// TestCluster_BadPathsTouchNothing sends writes and reads with bad paths
// through the HTTP API: each is a 400 and no file appears outside the
// directory, also through a symbolic link planted in it.
func TestCluster_BadPathsTouchNothing(t *testing.T) {
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	outside := t.TempDir()
	lm := module(t, leader)
	if err := os.Symlink(outside, filepath.Join(lm.cfg.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/v1/files/..%2F..%2Fescape",
		"/v1/files/a/../../escape",
		"/v1/files//etc/passwd",
		"/v1/files/a%00b",
		"/v1/files/a/./b",
		"/v1/files/.shoal-replication/tmp/x",
	}
	for _, n := range c.Nodes() {
		for _, p := range paths {
			for _, method := range []string{"PUT", "GET", "DELETE"} {
				req, err := http.NewRequest(method, n.URL(), bytes.NewReader([]byte("x")))
				if err != nil {
					t.Fatal(err)
				}
				req.URL.Opaque = p // sent as is, not cleaned
				resp, err := testHTTP.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Fatalf("%s %s on %s: status %d, want 400", method, p, n.Name, resp.StatusCode)
				}
			}
		}
	}
	// Through the link: refused on the leader, where the link is.
	r := send("PUT", leader.URL()+"/v1/files/link/planted", []byte("x"))
	if r.status != 400 || r.code() != "invalid_path" {
		t.Fatalf("put through a link out of the directory: %s, want 400 invalid_path", r)
	}
	if r := send("GET", leader.URL()+"/v1/files/link/anything", nil); r.status != 400 {
		t.Fatalf("get through a link out of the directory: %s, want 400", r)
	}
	if got := treeOf(t, outside); len(got) != 0 {
		t.Fatalf("files appeared outside the directory: %v", got)
	}

	// Conflicts and misuse are client errors, not internal ones.
	mustWrite(t, leader, "PUT", "/v1/files/d/f", []byte("x"))
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"PUT", "/v1/files/d/f/g", 409, "not_a_file"},
		{"PUT", "/v1/files/d", 409, "not_a_file"},
		{"DELETE", "/v1/files/d", 409, "not_a_file"},
		{"GET", "/v1/files/d", 409, "not_a_file"},
		{"GET", "/v1/files/missing", 404, "file_not_found"},
		{"DELETE", "/v1/files/missing", 404, "file_not_found"},
		{"POST", "/v1/files/d/f", 400, "invalid_parameter"},
		{"GET", "/v1/files?prefix=../", 400, "invalid_parameter"},
	} {
		for _, n := range c.Nodes() {
			r := send(tc.method, n.URL()+tc.path, []byte("y"))
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("%s %s on %s: %s, want %d %s", tc.method, tc.path, n.Name, r, tc.status, tc.code)
			}
		}
	}
}

// TestFollower_RefusesBadFrames runs a follower session against a fake
// leader that sends a path traversal after a valid index: the session
// fails with ErrBadFrame and nothing outside the directory is touched.
func TestFollower_RefusesBadFrames(t *testing.T) {
	base := t.TempDir()
	m := offlineModule(t, filepath.Join(base, "files"))
	sentinel := filepath.Join(base, "escape")

	for _, tc := range []struct {
		name string
		evil []byte
	}{
		{"traversal in a chunk", mustFrame(t, frame{typ: frameChunk, path: "../escape", data: []byte("pwned")})},
		{"absolute path in a chunk", mustFrame(t, frame{typ: frameChunk, path: sentinel, data: []byte("pwned")})},
		{"corrupt frame", func() []byte {
			b := mustFrame(t, frame{typ: frameChunk, path: "a", data: []byte("ok")})
			b[6] ^= 1
			return b
		}()},
		{"wrong header", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaderSide, followerSide := net.Pipe()
			defer leaderSide.Close()
			s := newFollowSession(m, "fake", followerSide)
			done := make(chan error, 1)
			go func() { done <- s.run(); _ = followerSide.Close() }()
			go func() { _, _ = io.Copy(io.Discard, leaderSide) }() // the follower's header and wants
			if tc.evil == nil {
				_, _ = leaderSide.Write([]byte("NOTSHOAL0001"))
			} else {
				var b []byte
				b = appendHeader(b)
				b = append(b, mustFrame(t, frame{typ: frameIndex, entries: []indexEntry{{Path: "a", Size: 5}}})...)
				b = append(b, mustFrame(t, frame{typ: frameIndexEnd, size: 1})...)
				b = append(b, tc.evil...)
				_, _ = leaderSide.Write(b)
			}
			err := <-done
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrBadHeader) {
				t.Fatalf("got %v, want ErrBadFrame or ErrBadHeader", err)
			}
			s.abort()
			if _, err := os.Stat(sentinel); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a file appeared outside the directory: %v", err)
			}
		})
	}
}

// syncBuffer collects the cluster's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitLogged(t *testing.T, logs *syncBuffer, text string) {
	t.Helper()
	testcluster.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(logs.String(), text) {
			return fmt.Errorf("nothing logged with %q", text)
		}
		return nil
	})
}

func mustFrame(t *testing.T, f frame) []byte {
	t.Helper()
	b, err := appendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
