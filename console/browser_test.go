package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"shoal/console"
	"shoal/internal/browsertest"
	"shoal/internal/testcluster"
)

// liveWithin is how soon a value written through the API must show on a
// console page that is open.
const liveWithin = time.Second

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

// browser is the console tests' tab: browsertest's, and where its
// screenshots go.
type browser struct {
	*browsertest.Browser
	dir string
}

func newBrowser(t *testing.T) *browser {
	return &browser{Browser: browsertest.New(t), dir: artifacts(t)}
}

// checkA11y checks the page's basic accessibility: landmarks, one h1,
// every form field labelled, every button and chart named.
func (b *browser) checkA11y(name string) {
	b.T.Helper()
	var problems []string
	b.Eval(`(() => {
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
		b.T.Errorf("page %s: accessibility: %s", name, strings.Join(problems, "; "))
	}
}

// screenshots writes console-<name>.png at desktop width, then checks the
// page fits a 360 px wide phone screen and writes console-<name>-phone.png.
func (b *browser) screenshots(name string) {
	b.T.Helper()
	var png []byte
	b.MustRun("screenshot "+name, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	}))
	b.write("console-"+name+".png", png)
	b.MustRun("phone viewport", chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2)))
	var wide struct{ Scroll, Inner int }
	b.Wait("layout settles at phone width", "window.innerWidth === 360", 5*time.Second)
	b.Eval(`({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`, &wide)
	if wide.Scroll > wide.Inner {
		b.T.Errorf("page %s at 360 px: the page is %d px wide, wider than the screen", name, wide.Scroll)
	}
	b.MustRun("phone screenshot "+name, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
		return err
	}))
	b.write("console-"+name+"-phone.png", png)
	b.MustRun("desktop viewport", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	}))
}

func (b *browser) write(name string, data []byte) {
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.T.Fatalf("write %s: %v", p, err)
	}
}

// open loads a console page afresh and waits until it is live.
func (b *browser) open(base, hash, title string) {
	b.T.Helper()
	b.ResetErrors()
	b.MustRun("open "+hash, chromedp.Navigate(base+"/ui/"+hash))
	b.Wait(hash+" shows its title", fmt.Sprintf(`document.querySelector('#page h1')?.textContent === %q`, title), 10*time.Second)
	b.Wait(hash+" is live", `document.getElementById('conn').dataset.state === 'live'`, 10*time.Second)
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
		b.T = t
		b.MustRun("open the console", chromedp.Navigate(base+"/ui/"))
		b.Wait("login form", `!document.getElementById('login').hidden && document.activeElement?.id === 'token'`, 10*time.Second)
		b.MustRun("wrong token", chromedp.SendKeys("#token", "not the token"), chromedp.Click(`#login-form button[type="submit"]`))
		b.Wait("wrong token refused", jsText("#login-error")+`.includes('not valid')`, 5*time.Second)
		b.expectCookies(base, 0)
		b.ExpectError("401") // the refused login's 401, reported asynchronously
		var cleared bool
		b.Eval(`(document.getElementById('token').value = '') === ''`, &cleared)
		b.MustRun("right token", chromedp.SendKeys("#token", testToken), chromedp.Click(`#login-form button[type="submit"]`))
		b.Wait("logged in", `!document.getElementById('nav').hidden && document.getElementById('login').hidden`, 5*time.Second)
		b.Wait("cluster page", `document.querySelector('#page h1')?.textContent === 'Cluster'`, 5*time.Second)
		ck := b.expectCookies(base, 1)[0]
		if ck.Name != console.CookieName || ck.Path != "/ui/" || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Secure {
			t.Fatalf("cookie %+v: want %s, Path=/ui/, HttpOnly, SameSite=Strict, not Secure over http", ck, console.CookieName)
		}
		var jsCookie string
		b.Eval(`document.cookie`, &jsCookie)
		if jsCookie != "" {
			t.Fatalf("page scripts read the cookie: %q", jsCookie)
		}
		b.CheckErrors("login")
		b.screenshots("login")
	})
	if t.Failed() {
		return
	}

	t.Run("cluster", func(t *testing.T) {
		b.T = t
		b.open(base, "#/cluster", "Cluster")
		b.Wait("three members", fmt.Sprintf(`[%q,%q,%q].every(n => %s.includes(n))`, c.Node(0).Name, c.Node(1).Name, c.Node(2).Name, jsText("#members")), 5*time.Second)
		b.Wait("a leader", `document.querySelectorAll('#members .badge.ok').length >= 4`, 5*time.Second)
		var pub struct{ Index uint64 }
		a.must("POST", other.URL()+"/v1/logs/console-cluster", `{"id":"`+unique("c")+`","data":1}`, &pub)
		latency["cluster"] = b.Wait("applied index reaches the write", fmt.Sprintf(`(() => {
			const dt = [...document.querySelectorAll('#raft-facts dt')].find(d => d.textContent === 'Applied index');
			return dt && Number(dt.nextElementSibling.textContent) >= %d; })()`, pub.Index), liveWithin)
		b.Wait("focus on the heading", `document.activeElement === document.querySelector('#page h1')`, 5*time.Second)
		b.Wait("the chart has points", `document.querySelector('.legend .value')?.textContent.endsWith('/s')`, 5*time.Second)
		b.CheckErrors("cluster")
		b.checkA11y("cluster")
		b.screenshots("cluster")

		// Keyboard: the skip link moves the focus to the content and
		// leaves the page as it is; Enter on a focused nav link opens
		// that page with the focus on its heading.
		var ok bool
		b.Eval(`document.querySelector('.skip').focus(), true`, &ok)
		b.MustRun("enter on the skip link", chromedp.KeyEvent("\r"))
		b.Wait("the skip link focuses main", `document.activeElement?.id === 'main' && location.hash === '#/cluster'`, 5*time.Second)
		b.Eval(`document.querySelector('nav a[href="#/logs"]').focus(), true`, &ok)
		b.MustRun("tab", chromedp.KeyEvent("\t"))
		b.Wait("tab moves along the nav", `document.activeElement?.getAttribute('href') === '#/kv'`, 5*time.Second)
		b.MustRun("enter on a nav link", chromedp.KeyEvent("\r"))
		b.Wait("the page opens focused", `document.querySelector('#page h1')?.textContent === 'KV' && document.activeElement === document.querySelector('#page h1')`, 5*time.Second)
		b.CheckErrors("keyboard")
	})

	t.Run("logs", func(t *testing.T) {
		b.T = t
		a.must("POST", base+"/v1/logs/console-orders", `{"id":"first","data":{"n":0}}`, nil)
		b.open(base, "#/logs/console-orders", "Logs")
		b.Wait("the first entry", jsText("#entries")+`.includes('"n":0')`, 5*time.Second)
		b.Wait("the log is followed", `document.getElementById('conn').dataset.state === 'live'`, 5*time.Second)
		want := unique("order")
		a.must("POST", other.URL()+"/v1/logs/console-orders", `{"id":"`+want+`","data":{"sku":"`+want+`"}}`, nil)
		latency["logs"] = b.Wait("the new entry streams in", jsText("#entries")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)
		b.Wait("the list shows the log", jsText("#log-list")+`.includes('console-orders')`, 5*time.Second)
		b.CheckErrors("logs")
		b.checkA11y("logs")
		b.screenshots("logs")
	})

	t.Run("kv", func(t *testing.T) {
		b.T = t
		b.open(base, "#/kv/console%2F", "KV")
		want := unique("value")
		a.must("PUT", other.URL()+"/v1/kv/console/k1", want, nil)
		latency["kv"] = b.Wait("the key shows", jsText("#kv-rows")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)

		// Edit through the page; every node gets it.
		b.MustRun("edit", chromedp.SetValue("#edit-key", "console/edited"), chromedp.SetValue("#edit-value", "from the console"), chromedp.Click("#save"))
		testcluster.Eventually(t, 5*time.Second, func() error {
			code, body := a.do("GET", other.URL()+"/v1/kv/console/edited?raw", "", nil)
			if code != 200 || string(body) != "from the console" {
				return fmt.Errorf("GET console/edited on %s: %d %s", other.Name, code, body)
			}
			return nil
		})
		b.Wait("the edited key shows", `!!document.querySelector('#kv-rows tr[data-key="console/edited"]')`, liveWithin)

		// Delete through the page.
		b.MustRun("delete", chromedp.Click(`button[aria-label="Delete console/k1"]`))
		b.Wait("the deleted key goes", `!document.querySelector('#kv-rows tr[data-key="console/k1"]')`, liveWithin)
		testcluster.Eventually(t, 5*time.Second, func() error {
			if code, body := a.do("GET", other.URL()+"/v1/kv/console/k1", "", nil); code != 404 {
				return fmt.Errorf("GET console/k1 on %s after delete: %d %s", other.Name, code, body)
			}
			return nil
		})
		b.CheckErrors("kv")
		b.checkA11y("kv")
		b.screenshots("kv")
	})

	t.Run("locks", func(t *testing.T) {
		b.T = t
		b.open(base, "#/locks", "Locks")
		holder := unique("worker")
		a.must("PUT", other.URL()+"/v1/semaphores/console-sem", `{"limit":2}`, nil)
		var lease struct{ Token uint64 }
		a.must("POST", other.URL()+"/v1/semaphores/console-sem/acquire", `{"holder":"`+holder+`","ttl":"30s"}`, &lease)
		a.must("POST", other.URL()+"/v1/locks/console-lock/acquire", `{"holder":"`+holder+`-w","mode":"write","ttl":"30s"}`, nil)
		latency["locks"] = b.Wait("holders with fencing tokens", fmt.Sprintf(`%s.includes(%q) && %s.includes('token %d') && %s.includes(%q)`,
			jsText("#semaphores"), holder, jsText("#semaphores"), lease.Token, jsText("#locks"), holder+"-w"), liveWithin)
		b.Wait("slots and mode", jsText("#semaphores")+`.includes('1 / 2') && `+jsText("#locks")+`.includes('write')`, 5*time.Second)
		b.CheckErrors("locks")
		b.checkA11y("locks")
		b.screenshots("locks")
	})

	t.Run("objects", func(t *testing.T) {
		b.T = t
		b.open(base, "#/objects/console-obj", "Objects")
		want := unique("price")
		a.must("PUT", other.URL()+"/v1/objects/console-obj", `{"version":1,"object":{"price":"`+want+`"}}`, nil)
		latency["objects"] = b.Wait("the object shows", jsText("#object")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)
		// The list is objectsync's shoal:objects, rebuilt every second.
		b.Wait("the object is listed", `!!document.querySelector('#object-rows tr[data-id="console-obj"]')`, 5*time.Second)
		b.Wait("connections show", jsText("#connections")+`.includes('websockets')`, 5*time.Second)
		b.CheckErrors("objects")
		b.checkA11y("objects")
		b.screenshots("objects")
	})

	t.Run("files", func(t *testing.T) {
		b.T = t
		b.open(base, "#/files", "Files")
		path := unique("console") + ".txt"
		a.must("PUT", other.URL()+"/v1/files/console/"+path, "hello from the test\n", nil)
		latency["files"] = b.Wait("the file shows", jsText("#files")+fmt.Sprintf(`.includes(%q)`, "console/"+path), liveWithin)
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
		b.Wait("both followers with their lag", `document.querySelectorAll('#followers tbody tr').length === 2 && document.querySelectorAll('.legend li').length === 4`, 10*time.Second)
		b.CheckErrors("files")
		b.checkA11y("files")
		b.screenshots("files")
	})

	// The indicator says when the node goes away and when it is back.
	t.Run("reconnect", func(t *testing.T) {
		b.T = t
		i := other.Index
		b.open(other.URL(), "#/kv/console%2F", "KV") // the cookie is the same on every port of a host
		c.Kill(i)
		b.Wait("connection lost shows", `document.getElementById('conn').dataset.state === 'lost' && `+jsText("#conn")+`.includes('lost')`, 10*time.Second)
		b.screenshots("lost")
		c.Restart(i)
		b.Wait("reconnected shows", `['back', 'live'].includes(document.getElementById('conn').dataset.state)`, 20*time.Second)
		want := unique("after")
		a.must("PUT", other.URL()+"/v1/kv/console/after-restart", want, nil)
		b.Wait("the watch works again", jsText("#kv-rows")+fmt.Sprintf(`.includes(%q)`, want), liveWithin)
		b.screenshots("reconnected")
	})
	// Negative control: the console watch does see an uncaught exception
	// and a console.error, so "no errors" above means something.
	t.Run("error detection", func(t *testing.T) {
		b.T = t
		b.ResetErrors()
		var ok bool
		b.Eval(`setTimeout(() => { throw new Error('planted exception'); }), console.error('planted error'), true`, &ok)
		testcluster.Eventually(t, 5*time.Second, func() error {
			all := strings.Join(b.Errors(), "\n")
			if !strings.Contains(all, "planted exception") || !strings.Contains(all, "planted error") {
				return fmt.Errorf("the planted errors were not seen; got %q", all)
			}
			return nil
		})
		b.ResetErrors()
	})
	t.Logf("browser tests took %v; a write showed on the page after %v", time.Since(start), latency)
}

// expectCookies returns the browser's cookies for base/ui/, failing
// unless there are n.
func (b *browser) expectCookies(base string, n int) []*network.Cookie {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/ui/"}})
	if err != nil {
		b.T.Fatalf("get cookies: %v", err)
	}
	if len(res.Cookies) != n {
		b.T.Fatalf("got %d cookies, want %d", len(res.Cookies), n)
	}
	return res.Cookies
}

// TestConsole_NoToken: on a cluster without a token the console opens
// with no login, and its API calls need none.
func TestConsole_NoToken(t *testing.T) {
	testcluster.FullRunOnly(t, "the console without a token (the token flow is tested under -short)")
	if browsertest.Chromium() == "" {
		t.Skip("no chromium binary found (install it with apt-get install -y chromium, or set SHOAL_CHROMIUM): skipping the browser tests")
	}
	c := testcluster.New(t, 1)
	b := newBrowser(t)
	base := c.Node(0).URL()
	b.MustRun("open the console", chromedp.Navigate(base+"/ui/"))
	b.Wait("the cluster page, no login", `document.querySelector('#page h1')?.textContent === 'Cluster' && document.getElementById('login').hidden && document.getElementById('logout').hidden`, 10*time.Second)
	b.Wait("live", `document.getElementById('conn').dataset.state === 'live' && `+jsText("#members")+fmt.Sprintf(`.includes(%q)`, c.Node(0).Name), 10*time.Second)
	b.expectCookies(base, 0)
	b.CheckErrors("cluster without a token")
}
