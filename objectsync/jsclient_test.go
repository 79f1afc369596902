package objectsync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/internal/testcluster"
	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

// jsRunner drives the browser client (web/client.js, as served) in
// Node.js: it subscribes to js-*, reports every change as a JSON line, and
// masters "jsm" with five bumps.
const jsRunner = `
import { ShoalObjects } from './client.mjs';
const url = process.argv[2];
const c = new ShoalObjects(url, { minBackoff: 20, maxBackoff: 500 });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
c.onerror = (e) => out({ error: e });
c.onconnect = () => out({ event: 'connect', connects: c.connects });
c.ondisconnect = (code, reason) => out({ event: 'disconnect', code, reason });
c.subscribe('js-*').onchange((id, version, object) =>
  out({ id, version, object, connects: c.connects, violations: c.violations }));
const m = c.master('jsm', { object: { n: 0 }, version: 0 });
let n = 0;
const timer = setInterval(() => { if (n < 5 && c.connects > 0) { n++; m.object.n = n; m.bump(); } }, 50);
process.stdin.resume();
process.stdin.on('end', () => { clearInterval(timer); c.close(); process.exit(0); });
`

type jsLine struct {
	ID         string          `json:"id"`
	Version    json.RawMessage `json:"version"`
	Object     json.RawMessage `json:"object"`
	Connects   int             `json:"connects"`
	Violations int             `json:"violations"`
	Error      json.RawMessage `json:"error"`
	Event      string          `json:"event"`
}

// nodeWithWebSocket returns the node binary if it has a WebSocket (Node 22,
// or 20/21 with --experimental-websocket), or skips the test.
func nodeWithWebSocket(t *testing.T) (string, []string) {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node binary: the browser client is not exercised")
	}
	for _, flags := range [][]string{nil, {"--experimental-websocket"}} {
		args := append(append([]string(nil), flags...), "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")
		if exec.Command(bin, args...).Run() == nil {
			return bin, flags
		}
	}
	t.Skip("this node has no WebSocket")
	return "", nil
}

// TestCluster_BrowserClient runs the served browser client in Node.js
// against a real cluster: it follows a Go master's edits, survives a
// restart of its node, ends with the master's state, and masters an
// object of its own with bump().
func TestCluster_BrowserClient(t *testing.T) {
	bin, flags := nodeWithWebSocket(t)
	c := newCluster(t, nil)
	n1 := c.Node(1)

	r := must(t, n1, "GET", "/v1/objects/client.js", "", nil, 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("client.js served as %q", ct)
	}
	v := must(t, n1, "GET", "/v1/objects/viewer", "", nil, 200)
	if ct := v.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(v.body), "from '/v1/objects/client.js'") {
		t.Fatalf("viewer served as %q: %.200s", ct, v.body)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client.mjs"), r.body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.mjs"), []byte(jsRunner), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append(flags, filepath.Join(dir, "run.mjs"), n1.URL())...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan jsLine, 10000)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l jsLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() {
			<-scanned
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
		_ = cmd.Wait()
	})
	var latest jsLine
	awaitJS := func(version string, want []byte) {
		t.Helper()
		testcluster.Eventually(t, 30*time.Second, func() error {
			for drained := false; !drained; {
				select {
				case l := <-lines:
					if l.Error != nil || l.Event != "" {
						t.Logf("browser client: %+v", l)
						continue
					}
					if l.ID == "js-1" {
						latest = l
					}
				default:
					drained = true
				}
			}
			got, err := document.Object(latest.Object, 0)
			if string(latest.Version) != version || err != nil || string(got) != string(want) {
				return fmt.Errorf("the browser client holds js-1 at %s %s, want %s %s", latest.Version, latest.Object, version, want)
			}
			return nil
		})
	}

	master := dial(t, c.Node(0))
	if err := master.Master("js-1"); err != nil {
		t.Fatal(err)
	}
	ed := newEditor(3)
	write := func(from, to int) []byte { return ed.writeVersions(t, master, "js-1", from, to) }
	awaitJS("10", write(1, 10))

	// Its node restarts; it reconnects and catches up.
	c.Stop(1)
	last := write(11, 15)
	c.Restart(1)
	awaitJS("15", last)
	if latest.Connects < 2 || latest.Violations != 0 {
		t.Fatalf("browser client: %d connections, %d violations", latest.Connects, latest.Violations)
	}

	// Its own master object, written with bump().
	sub := dial(t, c.Node(2))
	if err := sub.Subscribe("jsm"); err != nil {
		t.Fatal(err)
	}
	awaitState(t, sub, "jsm", "5", []byte(`{"n":5}`))
}

// TestBrowserClient_ApplyPatchAgreesWithServer checks the browser
// client's RFC 6902 implementation against the server's on hand-written
// cases and on the patches of random edits: the same result (compared in
// canonical form), or a failure on both sides.
func TestBrowserClient_ApplyPatchAgreesWithServer(t *testing.T) {
	bin, flags := nodeWithWebSocket(t)
	cases := [][2]string{
		{`{"a":1,"b":[1,2]}`, `[{"op":"replace","path":"/a","value":2}]`},
		{`{"a":{"b":{}}}`, `[{"op":"copy","from":"/a","path":"/a/b/c"}]`},
		{`{"x":1}`, `[{"op":"move","from":"/x","path":"/y"}]`},
		{`{}`, `[{"op":"move","from":"/x","path":"/y"}]`},
		{`{"a":[]}`, `[{"op":"add","path":"/a/-","value":{"k":[1,2]}},{"op":"test","path":"/a/0/k/1","value":2}]`},
		{`{"a~b":{"c/d":1}}`, `[{"op":"remove","path":"/a~0b/c~1d"}]`},
		{`{"a":[1,2,3]}`, `[{"op":"remove","path":"/a/-1"}]`},
		{`{"a":[1,2,3]}`, `[{"op":"add","path":"/a/1","value":9},{"op":"remove","path":"/a/3"}]`},
		{`{"a":[1,2,3]}`, `[{"op":"add","path":"/a/4","value":9}]`},
		{`{"a":{"x":1,"y":[true]}}`, `[{"op":"test","path":"/a","value":{"y":[true],"x":1}}]`},
		{`{"a":1}`, `[{"op":"test","path":"/a","value":2}]`},
		{`{"a":1}`, `[{"op":"replace","path":"/b","value":2}]`},
		{`{"a":1}`, `[{"op":"remove","path":""}]`},
	}
	ed := newEditor(11)
	prev := ed.canonical(t)
	for range 200 {
		ed.edit()
		next := ed.canonical(t)
		if patch, ok := document.Diff(prev, next); ok {
			cases = append(cases, [2]string{string(prev), string(patch)})
		}
		prev = next
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client.mjs"), clientJS, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import { applyPatch } from './client.mjs';
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map(([doc, patch]) => {
    try { return { ok: true, doc: applyPatch(JSON.parse(doc), JSON.parse(patch)) }; }
    catch (e) { return { ok: false }; }
  });
  process.stdout.write(JSON.stringify(out));
});
`
	if err := os.WriteFile(filepath.Join(dir, "apply.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command(bin, append(flags, filepath.Join(dir, "apply.mjs"))...)
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var results []struct {
		OK  bool            `json:"ok"`
		Doc json.RawMessage `json:"doc"`
	}
	if err := json.Unmarshal(outb, &results); err != nil || len(results) != len(cases) {
		t.Fatalf("node said %.200s: %v", outb, err)
	}
	for i, c := range cases {
		want, werr := document.Apply([]byte(c[0]), []byte(c[1]), 0)
		r := results[i]
		if (werr == nil) != r.OK {
			t.Fatalf("case %d %s on %s: server %v, browser ok=%t", i, c[1], c[0], werr, r.OK)
		}
		if werr != nil {
			continue
		}
		got, err := document.Object(r.Doc, 0)
		if err != nil || string(got) != string(want) {
			t.Fatalf("case %d %s on %s: browser %s, server %s", i, c[1], c[0], r.Doc, want)
		}
	}
}

// TestBrowserClient_SplitsBatchedFrames: under shoal.objects.v2 a frame
// may carry several messages, one per line; the browser client offers v2
// first and handles each line (fed here through a stand-in WebSocket).
// Reconnected, it resumes its pattern with the versions it holds.
func TestBrowserClient_SplitsBatchedFrames(t *testing.T) {
	bin, flags := nodeWithWebSocket(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client.mjs"), clientJS, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import { ShoalObjects } from './client.mjs';
let sock;
class StandIn { constructor(url, protocols) { sock = this; this.protocols = protocols; this.readyState = 1; this.sent = []; } send(m) { this.sent.push(JSON.parse(m)); } close() {} }
const c = new ShoalObjects('http://127.0.0.1:1', { WebSocketImpl: StandIn, minBackoff: 1, maxBackoff: 2 });
const seen = [];
c.subscribe('b-*').onchange((id, version) => seen.push(id + '@' + JSON.stringify(version)));
sock.onopen();
sock.onmessage({ data: [
  '{"type":"object","id":"b-1","version":1,"object":{"n":1}}',
  '{"type":"patch","id":"b-1","from":1,"to":2,"patch":[{"op":"replace","path":"/n","value":2}]}',
  '{"type":"object","id":"b-2","version":7,"object":{}}',
].join('\n') });
// The connection breaks; the next one resumes the pattern with the
// versions held.
const first = sock;
first.onclose({ code: 1006, reason: '' });
setTimeout(() => {
  sock.onopen();
  process.stdout.write(JSON.stringify({ protocols: first.protocols, seen, n: c.states.get('b-1')?.object?.n,
    violations: c.violations, resubscribe: sock.sent.find((m) => m.type === 'subscribe') }));
  c.close();
}, 50);
`
	if err := os.WriteFile(filepath.Join(dir, "batch.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append(flags, filepath.Join(dir, "batch.mjs"))...).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v: %s", err, out)
	}
	var got struct {
		Protocols   []string `json:"protocols"`
		Seen        []string `json:"seen"`
		N           int      `json:"n"`
		Violations  int      `json:"violations"`
		Resubscribe struct {
			Pattern      string                     `json:"pattern"`
			HaveVersions map[string]json.RawMessage `json:"have_versions"`
		} `json:"resubscribe"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node said %s: %v", out, err)
	}
	if len(got.Protocols) != 2 || got.Protocols[0] != protocol.BatchSubprotocol || got.Protocols[1] != protocol.Subprotocol {
		t.Fatalf("the client offers %v", got.Protocols)
	}
	if want := []string{"b-1@1", "b-1@2", "b-2@7"}; !slices.Equal(got.Seen, want) || got.N != 2 || got.Violations != 0 {
		t.Fatalf("from one frame of three messages the client saw %+v, want %v and n 2", got, want)
	}
	if r := got.Resubscribe; r.Pattern != "b-*" || len(r.HaveVersions) != 2 || string(r.HaveVersions["b-1"]) != "2" || string(r.HaveVersions["b-2"]) != "7" {
		t.Fatalf("after a reconnection the client subscribed with %+v, want b-* with have_versions b-1 2, b-2 7", r)
	}
}
