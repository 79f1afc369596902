package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"shoal/console"
	"shoal/internal/testcluster"
)

// liveWithin is how soon a value written through the API must show on a
// console page that is open.
const liveWithin = time.Second

// chromium returns the path of a Chromium or Chrome binary
// ($SHOAL_CHROMIUM first), or "". When $SHOAL_CHROMIUM_INSTALLING names a
// file, an installation is under way (CI installs Debian's chromium beside
// the other tests): it waits, up to five minutes, until that file is gone.
func chromium() string {
	if f := os.Getenv("SHOAL_CHROMIUM_INSTALLING"); f != "" {
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if _, err := os.Stat(f); err != nil {
				break
			}
		}
	}
	if p := os.Getenv("SHOAL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifacts is where screenshots go: $SHOAL_TEST_ARTIFACTS, else a
// directory of the test's own.
func artifacts(t *testing.T) string {
	if d := os.Getenv("SHOAL_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser is one headless Chromium tab and what its console printed.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions since reset
}

func newBrowser(t *testing.T) *browser {
	path := chromium()
	if path == "" {
		t.Skip("no chromium binary found (install it with apt-get install -y chromium, or set SHOAL_CHROMIUM): skipping the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests often run as root in containers
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	b := &browser{t: t, ctx: ctx, dir: artifacts(t)}
	if err := chromedp.Do(ctx); err != nil { // start the browser, no timeout
		cancelTab()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException:
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			case chromedp.ConsoleWarning:
				t.Logf("browser console: %s", m)
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		<-done
	})
	return b
}

// run runs actions with a bound.
func (b *browser) run(within time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

func (b *browser) mustRun(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	// Generous: a loaded CI machine (three test binaries, the e2e suite)
	// once took over 15 s to type a token and click.
	if err := b.run(45*time.Second, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait waits until the JavaScript expression is truthy, for at most
// within, and returns how long that took.
func (b *browser) wait(what, expr string, within time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	err := b.run(within+time.Second, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(10*time.Millisecond)))
		return err
	}))
	if err != nil {
		b.t.Fatalf("%s: not true within %v (%s): %v", what, within, expr, err)
	}
	return time.Since(start)
}

// eval evaluates a JavaScript expression into v.
func (b *browser) eval(expr string, v any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		b.t.Fatalf("evaluate %s: decode %s: %v", expr, raw, err)
	}
}

func (b *browser) resetErrors() {
	b.mu.Lock()
	b.errors = nil
	b.mu.Unlock()
}

// expectError waits for the browser to report an error containing substr
// (it arrives asynchronously, after the request that caused it) and drops
// it, so that checkErrors does not count an error the test provoked.
func (b *browser) expectError(substr string) {
	b.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b.mu.Lock()
		n := len(b.errors)
		b.errors = slices.DeleteFunc(b.errors, func(e string) bool { return strings.Contains(e, substr) })
		found := len(b.errors) < n
		b.mu.Unlock()
		if found {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the browser reported no error containing %q", substr)
		}
	}
}

// checkErrors fails the test if the page printed errors or threw since
// the last reset.
func (b *browser) checkErrors(page string) {
	b.t.Helper()
	b.mu.Lock()
	errs := b.errors
	b.mu.Unlock()
	if len(errs) > 0 {
		b.t.Errorf("page %s: the browser console has errors:\n%s", page, strings.Join(errs, "\n"))
	}
}

// checkA11y checks the page's basic accessibility: landmarks, one h1,
// every form field labelled, every button and chart named.
func (b *browser) checkA11y(name string) {
	b.t.Helper()
	var problems []string
	b.eval(`(() => {
		const p = [];
		if (!document.querySelector('main')) p.push('no main landmark');
		if (!document.querySelector('nav[aria-label]')) p.push('no labelled nav');
		if (document.querySelectorAll('#page h1').length !== 1) p.push('not exactly one h1');
		for (const el of document.querySelectorAll('#page input, #page textarea, #page select'))
			if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) p.push('unlabelled field #' + el.id);
		for (const el of document.querySelectorAll('#page button'))
			if (!el.textContent.trim() && !el.getAttribute('aria-label')) p.push('unnamed button');
		for (const el of document.querySelectorAll('#page canvas'))
			if (el.getAttribute('role') !== 'img' || !el.getAttribute('aria-label')) p.push('unnamed chart');
		return p; })()`, &problems)
	if len(problems) > 0 {
		b.t.Errorf("page %s: accessibility: %s", name, strings.Join(problems, "; "))
	}
}

// screenshots writes console-<name>.png at desktop width, then checks the
// page fits a 360 px wide phone screen and writes console-<name>-phone.png.
func (b *browser) screenshots(name string) {
	b.t.Helper()
	var png []byte
	b.mustRun("screenshot "+name, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	}))
	b.write("console-"+name+".png", png)
	b.mustRun("phone viewport", chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2)))
	var wide struct{ Scroll, Inner int }
	b.wait("layout settles at phone width", "window.innerWidth === 360", 5*time.Second)
	b.eval(`({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`, &wide)
	if wide.Scroll > wide.Inner {
		b.t.Errorf("page %s at 360 px: the page is %d px wide, wider than the screen", name, wide.Scroll)
	}
	b.mustRun("phone screenshot "+name, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
		return err
	}))
	b.write("console-"+name+"-phone.png", png)
	b.mustRun("desktop viewport", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	}))
}

func (b *browser) write(name string, data []byte) {
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.t.Fatalf("write %s: %v", p, err)
	}
}

// open loads a console page afresh and waits until it is live.
func (b *browser) open(base, hash, title string) {
	b.t.Helper()
	b.resetErrors()
	b.mustRun("open "+hash, chromedp.Navigate(base+"/ui/"+hash))
	b.wait(hash+" shows its title", fmt.Sprintf(`document.querySelector('#page h1')?.textContent === %q`, title), 10*time.Second)
	b.wait(hash+" is live", `document.getElementById('conn').dataset.state === 'live'`, 10*time.Second)
}

// jsText is a JavaScript expression for the text of the element sel.
func jsText(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent || '')`, sel)
}

func testBrowser(t *testing.T, c *testcluster.Cluster, a *apiClient, lead *testcluster.Node) {
	b := newBrowser(t)
	base := lead.URL()
	var other *testcluster.Node
	for _, n := range c.Nodes() {
		if n != lead {
			other = n
			break
		}
	}
	latency := map[string]time.Duration{}
	start := time.Now()

	t.Run("login", func(t *testing.T) {
		b.t = t
		b.mustRun("open the console", chromedp.Navigate(base+"/ui/"))
		b.wait("login form", `!document.getElementById('login').hidden && document.activeElement?.id === 'token'`, 10*time.Second)
		b.mustRun("wrong token", chromedp.SendKeys("#token", "not the token"), chromedp.Click(`#login-form button[type="submit"]`))
		b.wait("wrong token refused", jsText("#login-error")+`.includes('not valid')`, 5*time.Second)
		b.expectCookies(base, 0)
		b.expectError("401") // the refused login's 401, reported asynchronously
		var cleared bool
		b.eval(`(document.getElementById('token').value = '') === ''`, &cleared)
		b.mustRun("right token", chromedp.SendKeys("#token", testToken), chromedp.Click(`#login-form button[type="submit"]`))
		b.wait("logged in", `!document.getElementById('nav').hidden && document.getElementById('login').hidden`, 5*time.Second)
		b.wait("cluster page", `document.querySelector('#page h1')?.textContent === 'Cluster'`, 5*time.Second)
		ck := b.expectCookies(base, 1)[0]
		if ck.Name != console.CookieName || ck.Path != "/ui/" || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Secure {
			t.Fatalf("cookie %+v: want %s, Path=/ui/, HttpOnly, SameSite=Strict, not Secure over http", ck, console.CookieName)
		}
		var jsCookie string
		b.eval(`document.cookie`, &jsCookie)
		if jsCookie != "" {
			t.Fatalf("page scripts read the cookie: %q", jsCookie)
		}
		b.checkErrors("login")
		b.screenshots("login")
	})
	if t.Failed() {
		return
	}

	t.Run("cluster", func(t *testing.T) {
		b.t = t
		b.open(base, "#/cluster", "Cluster")
		b.wait("three members", fmt.Sprintf(`[%q,%q,%q].every(n => %s.includes(n))`, c.Node(0).Name, c.Node(1).Name, c.Node(2).Name, jsText("#members")), 5*time.Second)
		b.wait("a leader", `document.querySelectorAll('#members .badge.ok').length >= 4`, 5*time.Second)
		var pub struct{ Index uint64 }
		a.must("POST", other.URL()+"/v1/logs/console-cluster", `{"id":"`+unique("c")+`","data":1}`, &pub)
		latency["cluster"] = b.wait("applied index reaches the write", fmt.Sprintf(`(() => {
			const dt = [...document.querySelectorAll('#raft-facts dt')].find(d => d.textContent === 'Applied index');
			return dt && Number(dt.nextElementSibling.textContent) >= %d; })()`, pub.Index), liveWithin)
		b.wait("focus on the heading", `document.activeElement === document.querySelector('#page h1')`, 5*time.Second)
		b.wait("the chart has points", `document.querySelector('.legend .value')?.textContent.endsWith('/s')`, 5*time.Second)
		b.checkErrors("cluster")
		b.checkA11y("cluster")
		b.screenshots("cluster")

		// Keyboard: the skip link moves the focus to the content and
		// leaves the page as it is; Enter on a focused nav link opens
		// that page with the focus on its heading.
		var ok bool
		b.eval(`document.querySelector('.skip').focus(), true`, &ok)
		b.mustRun("enter on the skip link", chromedp.KeyEvent("\r"))
		b.wait("the skip link focuses main", `document.activeElement?.id === 'main' && location.hash === '#/cluster'`, 5*time.Second)
		b.eval(`document.querySelector('nav a[href="#/logs"]').focus(), true`, &ok)
		b.mustRun("tab", chromedp.KeyEvent("\t"))
		b.wait("tab moves along the nav", `document.activeElement?.getAttribute('href') === '#/kv'`, 5*time.Second)
		b.mustRun("enter on a nav link", chromedp.KeyEvent("\r"))
		b.wait("the page opens focused", `document.querySelector('#page h1')?.textContent === 'KV' && document.activeElement === document.querySelector('#page h1')`, 5*time.Second)
		b.checkErrors("keyboard")
	})

	t.Run("logs", func(t *testing.T) {
		b.t = t
		a.must("POST", base+"/v1/logs/console-orders", `{"id":"first","data":{"n":0}}`, nil)
		b.open(base, "#/logs/console-orders", "Logs")
		b.wait("the first entry", jsText("#entries")+`.includes('"n":0')`, 5*time.Second)
		b.wait("the log is followed", `document.getElementById('conn').dataset.state === 'live'`, 5*time.Second)
		want := unique("order")
		a.must("POST", other.URL()+"/v1/logs/console-orders", `{"id":"`+want+`","data":{"sku":"`+want+`"}}`, nil)
		latency["logs"] = b.wait("the new entry streams in", jsText("#entries")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)
		b.wait("the list shows the log", jsText("#log-list")+`.includes('console-orders')`, 5*time.Second)
		b.checkErrors("logs")
		b.checkA11y("logs")
		b.screenshots("logs")
	})

	t.Run("kv", func(t *testing.T) {
		b.t = t
		b.open(base, "#/kv/console%2F", "KV")
		want := unique("value")
		a.must("PUT", other.URL()+"/v1/kv/console/k1", want, nil)
		latency["kv"] = b.wait("the key shows", jsText("#kv-rows")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)

		// Edit through the page; every node gets it.
		b.mustRun("edit", chromedp.SetValue("#edit-key", "console/edited"), chromedp.SetValue("#edit-value", "from the console"), chromedp.Click("#save"))
		testcluster.Eventually(t, 5*time.Second, func() error {
			code, body := a.do("GET", other.URL()+"/v1/kv/console/edited?raw", "", nil)
			if code != 200 || string(body) != "from the console" {
				return fmt.Errorf("GET console/edited on %s: %d %s", other.Name, code, body)
			}
			return nil
		})
		b.wait("the edited key shows", `!!document.querySelector('#kv-rows tr[data-key="console/edited"]')`, liveWithin)

		// Delete through the page.
		b.mustRun("delete", chromedp.Click(`button[aria-label="Delete console/k1"]`))
		b.wait("the deleted key goes", `!document.querySelector('#kv-rows tr[data-key="console/k1"]')`, liveWithin)
		testcluster.Eventually(t, 5*time.Second, func() error {
			if code, body := a.do("GET", other.URL()+"/v1/kv/console/k1", "", nil); code != 404 {
				return fmt.Errorf("GET console/k1 on %s after delete: %d %s", other.Name, code, body)
			}
			return nil
		})
		b.checkErrors("kv")
		b.checkA11y("kv")
		b.screenshots("kv")
	})

	t.Run("locks", func(t *testing.T) {
		b.t = t
		b.open(base, "#/locks", "Locks")
		holder := unique("worker")
		a.must("PUT", other.URL()+"/v1/semaphores/console-sem", `{"limit":2}`, nil)
		var lease struct{ Token uint64 }
		a.must("POST", other.URL()+"/v1/semaphores/console-sem/acquire", `{"holder":"`+holder+`","ttl":"30s"}`, &lease)
		a.must("POST", other.URL()+"/v1/locks/console-lock/acquire", `{"holder":"`+holder+`-w","mode":"write","ttl":"30s"}`, nil)
		latency["locks"] = b.wait("holders with fencing tokens", fmt.Sprintf(`%s.includes(%q) && %s.includes('token %d') && %s.includes(%q)`,
			jsText("#semaphores"), holder, jsText("#semaphores"), lease.Token, jsText("#locks"), holder+"-w"), liveWithin)
		b.wait("slots and mode", jsText("#semaphores")+`.includes('1 / 2') && `+jsText("#locks")+`.includes('write')`, 5*time.Second)
		b.checkErrors("locks")
		b.checkA11y("locks")
		b.screenshots("locks")
	})

	t.Run("objects", func(t *testing.T) {
		b.t = t
		b.open(base, "#/objects/console-obj", "Objects")
		want := unique("price")
		a.must("PUT", other.URL()+"/v1/objects/console-obj", `{"version":1,"object":{"price":"`+want+`"}}`, nil)
		latency["objects"] = b.wait("the object shows", jsText("#object")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)
		// The list is objectsync's shoal:objects, rebuilt every second.
		b.wait("the object is listed", `!!document.querySelector('#object-rows tr[data-id="console-obj"]')`, 5*time.Second)
		b.wait("connections show", jsText("#connections")+`.includes('websockets')`, 5*time.Second)
		b.checkErrors("objects")
		b.checkA11y("objects")
		b.screenshots("objects")
	})

	t.Run("files", func(t *testing.T) {
		b.t = t
		b.open(base, "#/files", "Files")
		path := unique("console") + ".txt"
		a.must("PUT", other.URL()+"/v1/files/console/"+path, "hello from the test\n", nil)
		latency["files"] = b.wait("the file shows", jsText("#files")+fmt.Sprintf(`.includes(%q)`, "console/"+path), liveWithin)
		// Only the replication leader lists its followers' lag: open the
		// page on whichever node leads replication now (the cookie holds
		// for every port of the host).
		var leader *testcluster.Node
		testcluster.Eventually(t, 10*time.Second, func() error {
			var st struct{ Leader, Role string }
			a.must("GET", base+"/v1/replication/status", "", &st)
			for _, n := range c.Nodes() {
				if n.Name == st.Leader {
					leader = n
					return nil
				}
			}
			return fmt.Errorf("no replication leader yet (%s is %s)", lead.Name, st.Role)
		})
		if leader != lead {
			b.open(leader.URL(), "#/files", "Files")
		}
		b.wait("both followers with their lag", `document.querySelectorAll('#followers tbody tr').length === 2 && document.querySelectorAll('.legend li').length === 4`, 10*time.Second)
		b.checkErrors("files")
		b.checkA11y("files")
		b.screenshots("files")
	})

	// The indicator says when the node goes away and when it is back.
	t.Run("reconnect", func(t *testing.T) {
		b.t = t
		i := other.Index
		b.open(other.URL(), "#/kv/console%2F", "KV") // the cookie is the same on every port of a host
		c.Kill(i)
		b.wait("connection lost shows", `document.getElementById('conn').dataset.state === 'lost' && `+jsText("#conn")+`.includes('lost')`, 10*time.Second)
		b.screenshots("lost")
		c.Restart(i)
		b.wait("reconnected shows", `['back', 'live'].includes(document.getElementById('conn').dataset.state)`, 20*time.Second)
		want := unique("after")
		a.must("PUT", other.URL()+"/v1/kv/console/after-restart", want, nil)
		b.wait("the watch works again", jsText("#kv-rows")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)
		b.screenshots("reconnected")
	})
	// Negative control: the console watch does see an uncaught exception
	// and a console.error, so "no errors" above means something.
	t.Run("error detection", func(t *testing.T) {
		b.t = t
		b.resetErrors()
		var ok bool
		b.eval(`setTimeout(() => { throw new Error('planted exception'); }), console.error('planted error'), true`, &ok)
		testcluster.Eventually(t, 5*time.Second, func() error {
			b.mu.Lock()
			defer b.mu.Unlock()
			all := strings.Join(b.errors, "\n")
			if !strings.Contains(all, "planted exception") || !strings.Contains(all, "planted error") {
				return fmt.Errorf("the planted errors were not seen; got %q", all)
			}
			return nil
		})
		b.resetErrors()
	})
	t.Logf("browser tests took %v; a write showed on the page after %v", time.Since(start), latency)
}

// expectCookies returns the browser's cookies for base/ui/, failing
// unless there are n.
func (b *browser) expectCookies(base string, n int) []*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/ui/"}})
	if err != nil {
		b.t.Fatalf("get cookies: %v", err)
	}
	if len(res.Cookies) != n {
		b.t.Fatalf("got %d cookies, want %d", len(res.Cookies), n)
	}
	return res.Cookies
}

// TestConsole_NoToken: on a cluster without a token the console opens
// with no login, and its API calls need none.
func TestConsole_NoToken(t *testing.T) {
	testcluster.FullRunOnly(t, "the console without a token (the token flow is tested under -short)")
	if chromium() == "" {
		t.Skip("no chromium binary found (install it with apt-get install -y chromium, or set SHOAL_CHROMIUM): skipping the browser tests")
	}
	c := testcluster.New(t, 1)
	b := newBrowser(t)
	base := c.Node(0).URL()
	b.mustRun("open the console", chromedp.Navigate(base+"/ui/"))
	b.wait("the cluster page, no login", `document.querySelector('#page h1')?.textContent === 'Cluster' && document.getElementById('login').hidden && document.getElementById('logout').hidden`, 10*time.Second)
	b.wait("live", `document.getElementById('conn').dataset.state === 'live' && `+jsText("#members")+fmt.Sprintf(`.includes(%q)`, c.Node(0).Name), 10*time.Second)
	b.expectCookies(base, 0)
	b.checkErrors("cluster without a token")
}
