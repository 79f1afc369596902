package objectsync

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"shoal/internal/browsertest"
	"shoal/internal/testcluster"
	"shoal/objectsync/internal/document"
)

// chromiumPage starts the served browser client in the page: it follows
// chr-* and keeps the newest state of chr-1, and counts the messages it
// handles by type (to show that it gets patches, not only full states).
const chromiumPage = `import('/v1/objects/client.js').then(({ ShoalObjects }) => {
  const c = new ShoalObjects(location.origin, { minBackoff: 20, maxBackoff: 500 });
  window.shoal = { client: c, types: {}, latest: null, errors: [] };
  const handle = c._handle.bind(c);
  c._handle = (m) => { window.shoal.types[m.type] = (window.shoal.types[m.type] || 0) + 1; return handle(m); };
  c.onerror = (e) => window.shoal.errors.push(JSON.stringify(e));
  c.subscribe('chr-*').onchange((id, version, object) => {
    if (id === 'chr-1') window.shoal.latest = { version: JSON.stringify(version), object: JSON.stringify(object) };
  });
  return true;
})`

// TestCluster_ChromiumClient runs the served browser client in a real
// headless Chromium against a real cluster: subscribed by pattern, it
// follows a Go master's edits by patches, survives a restart of its node,
// and ends with the master's state byte for byte (in canonical form),
// without a version gap or a console error. Then the viewer page lists
// the object and, clicked, watches it change.
func TestCluster_ChromiumClient(t *testing.T) {
	b := browsertest.New(t)
	c := newCluster(t, nil)
	n1 := c.Node(1)

	// A page of n1's origin, so that the module and the websocket are
	// same-origin, as for the viewer page.
	b.MustRun("open a page of the node", chromedp.Navigate(n1.URL()+"/v1/objects/client.js"))
	var started bool
	b.Eval(chromiumPage, &started)

	master := dial(t, c.Node(0))
	if err := master.Master("chr-1"); err != nil {
		t.Fatal(err)
	}
	ed := newEditor(7)
	write := func(from, to int) []byte { return ed.writeVersions(t, master, "chr-1", from, to) }
	type pageState struct {
		Latest *struct {
			Version string `json:"version"`
			Object  string `json:"object"`
		} `json:"latest"`
		Types      map[string]int `json:"types"`
		Connects   int            `json:"connects"`
		Violations int            `json:"violations"`
		Errors     []string       `json:"errors"`
	}
	read := func() pageState {
		var s pageState
		b.Eval(`({ latest: window.shoal.latest, types: window.shoal.types, errors: window.shoal.errors,
			connects: window.shoal.client.connects, violations: window.shoal.client.violations })`, &s)
		return s
	}
	await := func(version string, want []byte) pageState {
		t.Helper()
		var s pageState
		testcluster.Eventually(t, 30*time.Second, func() error {
			s = read()
			if s.Latest == nil {
				return fmt.Errorf("the page holds no chr-1 yet (%+v)", s)
			}
			got, err := document.Object([]byte(s.Latest.Object), 0)
			if s.Latest.Version != version || err != nil || string(got) != string(want) {
				return fmt.Errorf("the page holds chr-1 at %s %s, want %s %s", s.Latest.Version, s.Latest.Object, version, want)
			}
			return nil
		})
		return s
	}
	s := await("10", write(1, 10))
	if s.Types["patch"] == 0 {
		t.Fatalf("the page got no patch for 10 versions: %v", s.Types)
	}

	// Its node restarts; it reconnects and catches up.
	c.Stop(1)
	last := write(11, 15)
	c.Restart(1)
	s = await("15", last)
	if s.Connects < 2 || s.Violations != 0 || len(s.Errors) > 0 {
		t.Fatalf("the page: %d connections, %d version gaps, errors %v", s.Connects, s.Violations, s.Errors)
	}
	// The viewer page lists the object (from shoal:objects, rebuilt
	// every second); a click watches it change.
	b.MustRun("open the viewer", chromedp.Navigate(n1.URL()+"/ui/objects"))
	b.Wait("the viewer connects", `document.getElementById('status').textContent === 'connected'`, 10*time.Second)
	row := `[...document.querySelectorAll('#objects tr')].find(tr => tr.children[0].textContent === 'chr-1')`
	b.Wait("the viewer lists chr-1 at version 15", row+`?.children[1].textContent === '15'`, 10*time.Second)
	var clicked bool
	b.Eval(`(`+row+`.click(), true)`, &clicked)
	b.Wait("the viewer watches chr-1", `document.getElementById('object').textContent.startsWith('version 15')`, 10*time.Second)
	write(16, 16)
	b.Wait("the watched object changes", `document.getElementById('object').textContent.startsWith('version 16')`, 10*time.Second)

	// What the browser itself logs is expected: no favicon on an API
	// node, and the reconnections refused while the node was down.
	for _, e := range b.Errors() {
		if !strings.Contains(e, "favicon.ico") && !strings.Contains(e, "WebSocket connection") {
			t.Errorf("the browser console: %s", e)
		}
	}
}
