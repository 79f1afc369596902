package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"shoal/internal/agent"
	"shoal/internal/browsertest"
	"shoal/internal/testcluster"
)

// TestConsole_CrossOrigin checks the API's browser safety (docs/security.md,
// "Browsers") from real pages in headless Chromium: a node with a token and
// --cors-origins, and two static pages on other ports of 127.0.0.1, so on
// other origins of the same site. The allowed page reads, publishes and
// follows a log with EventSource and ?token=; the other page can read
// nothing and write nothing, whatever it tries: fetch with the token, a
// no-cors POST with the console cookie or ?token=, a form post. Every
// outcome is checked on the server, from Go; the same no-cors POST and form
// post from the allowed page are the controls that do write.
func TestConsole_CrossOrigin(t *testing.T) {
	if browsertest.Chromium() == "" {
		t.Skip("no chromium binary found (install it with apt-get install -y chromium, or set SHOAL_CHROMIUM): skipping the browser tests")
	}
	start := time.Now()
	allowed, other := pageServer(t), pageServer(t)
	c := testcluster.New(t, 1, testcluster.WithToken(testToken), testcluster.WithConfig(func(_ int, cfg *agent.Config) {
		cfg.CORSOrigins = []string{allowed}
	}))
	api := c.Node(0).URL()
	a := newAPIClient(t)
	value := unique("readable")
	// One key per read, so that each request has its own URL.
	for _, k := range []string{"read", "read-token", "read-cookie", "read-no-cors"} {
		a.must("PUT", api+"/v1/kv/xo/"+k, value, nil)
	}
	a.must("POST", api+"/v1/logs/xo-main", `{"id":"before","data":0}`, nil)

	b := newBrowser(t)
	seen := listenResponses(t, b)

	// The console cookie, as a console user's browser holds it: SameSite
	// Strict, but the pages are same-site (only their ports differ), so
	// the browser sends it with their requests to /ui/api/. It makes the
	// no-cors POST and the form post below carry a valid credential: only
	// the origin check stands between them and a write.
	b.MustRun("open the console", chromedp.Navigate(api+"/ui/"))
	b.Wait("login form", `!document.getElementById('login').hidden && document.activeElement?.id === 'token'`, 10*time.Second)
	b.MustRun("log in", chromedp.SendKeys("#token", testToken), chromedp.Click(`#login-form button[type="submit"]`))
	b.Wait("logged in", `!document.getElementById('nav').hidden && document.getElementById('login').hidden`, 10*time.Second)
	b.expectCookies(api, 1)

	t.Run("allowed", func(t *testing.T) {
		b.T = t
		b.ResetErrors()
		b.MustRun("open the allowed page", chromedp.Navigate(allowed+"/"))
		published := unique("allowed-fetch")
		var got struct {
			ReadStatus, PublishStatus int
			Read                      string
			Publish                   struct{ Index uint64 }
		}
		b.EvalWithin(30*time.Second, jsCall(`async (api, token, id) => {
			const auth = {Authorization: 'Bearer ' + token};
			const read = await fetch(api + '/v1/kv/xo/read?raw', {headers: auth});
			const out = {readStatus: read.status, read: await read.text()};
			const pub = await fetch(api + '/v1/logs/xo-main', {method: 'POST',
				headers: {...auth, 'Content-Type': 'application/json'},
				body: JSON.stringify({id, data: {from: location.origin}})});
			out.publishStatus = pub.status;
			out.publish = await pub.json();
			return out; }`, api, testToken, published), &got)
		if got.ReadStatus != 200 || got.Read != value {
			t.Errorf("GET with the token from the allowed origin: the page read %d %q, want 200 %q", got.ReadStatus, got.Read, value)
		}
		if got.PublishStatus != 201 || got.Publish.Index == 0 {
			t.Errorf("POST with the token from the allowed origin: the page read %d %+v, want 201 and an index", got.PublishStatus, got.Publish)
		}
		seen.expect(t, "GET from the allowed origin: want Access-Control-Allow-Origin "+allowed, "/v1/kv/xo/read?",
			func(r response) bool {
				return r.Method == http.MethodGet && r.Status == 200 && r.AllowOrigin == allowed
			})
		expectEntries(t, a, api, "xo-main", published)

		// An EventSource cannot send Authorization: it carries ?token=.
		var ok bool
		b.Eval(jsCall(`(url) => {
			window.xo = {open: false, ids: []};
			const es = new EventSource(url);
			es.onopen = () => { xo.open = true; };
			es.addEventListener('entry', e => xo.ids.push(JSON.parse(e.data).id));
			return true; }`, api+"/v1/logs/xo-live/stream?token="+url.QueryEscape(testToken)), &ok)
		b.Wait("the allowed page's EventSource opens", `window.xo.open`, 10*time.Second)
		live := unique("live")
		a.must("POST", api+"/v1/logs/xo-live", `{"id":"`+live+`","data":1}`, nil)
		b.Wait("the entry published afterwards streams in", fmt.Sprintf(`window.xo.ids.includes(%q)`, live), 10*time.Second)
		b.CheckErrors("allowed origin")

		// Controls: the no-cors POST and the form post refused to the
		// other page below do write from this one, with the cookie.
		noCors := unique("allowed-no-cors")
		var r fetchResult
		b.EvalWithin(30*time.Second, jsCall(`(api, id) => `+attemptJS+`(api + '/ui/api/v1/logs/xo-main?via=allowed-no-cors',
			{method: 'POST', mode: 'no-cors', credentials: 'include', body: JSON.stringify({id, data: 1})})`, api, noCors), &r)
		if !r.Fetched || r.Type != "opaque" {
			t.Errorf("no-cors POST from the allowed origin: got %+v, want an opaque answer", r)
		}
		seen.expect(t, "no-cors POST with the cookie from the allowed origin: want 201", "via=allowed-no-cors",
			func(r response) bool { return r.Status == 201 })
		expectEntries(t, a, api, "xo-main", noCors)
		form := unique("allowed-form")
		b.Eval(formPostJS(api+"/ui/api/v1/logs/xo-main?via=allowed-form", form), &ok)
		b.waitNavigated("the form post's answer", fmt.Sprintf(`location.origin === %q && document.body?.innerText.includes('"index"')`, api), 10*time.Second)
		expectEntries(t, a, api, "xo-main", form)
	})
	if t.Failed() {
		return
	}

	t.Run("disallowed", func(t *testing.T) {
		b.T = t
		b.MustRun("open the other page", chromedp.Navigate(other+"/"))
		ids := map[string]string{}
		for _, k := range []string{"fetch", "no-cors-cookie", "no-cors-token", "form"} {
			ids[k] = unique("refused-" + k)
		}
		var got struct {
			ReadToken, ReadCookie, ReadNoCors, Publish, NoCorsCookie, NoCorsToken fetchResult
		}
		b.EvalWithin(30*time.Second, jsCall(`async (api, token, ids) => {
			const attempt = `+attemptJS+`;
			const body = id => JSON.stringify({id, data: {from: location.origin}});
			return {
				readToken: await attempt(api + '/v1/kv/xo/read-token?raw', {headers: {Authorization: 'Bearer ' + token}}),
				readCookie: await attempt(api + '/ui/api/v1/kv/xo/read-cookie?raw', {credentials: 'include'}),
				readNoCors: await attempt(api + '/ui/api/v1/kv/xo/read-no-cors?raw', {mode: 'no-cors', credentials: 'include'}),
				publish: await attempt(api + '/v1/logs/xo-main?via=fetch-token', {method: 'POST',
					headers: {Authorization: 'Bearer ' + token, 'Content-Type': 'application/json'}, body: body(ids['fetch'])}),
				noCorsCookie: await attempt(api + '/ui/api/v1/logs/xo-main?via=no-cors-cookie', {method: 'POST', mode: 'no-cors',
					credentials: 'include', body: body(ids['no-cors-cookie'])}),
				noCorsToken: await attempt(api + '/v1/logs/xo-main?via=no-cors-token&token=' + encodeURIComponent(token),
					{method: 'POST', mode: 'no-cors', body: body(ids['no-cors-token'])}),
			}; }`, api, testToken, ids), &got)

		// Reads: the server answers, without CORS headers, and the
		// browser keeps the answer from the page.
		if got.ReadToken.Fetched {
			t.Errorf("GET with the token from another origin: the page read %+v, want a failed fetch (the preflight is refused)", got.ReadToken)
		}
		if got.ReadCookie.Fetched {
			t.Errorf("GET with the cookie from another origin: the page read %+v, want a failed fetch", got.ReadCookie)
		}
		seen.expect(t, "GET with the cookie from another origin: want 200, no Access-Control-Allow-Origin, the browser refusing it",
			"xo/read-cookie?", func(r response) bool {
				return r.Status == 200 && r.AllowOrigin == "" && r.CORSError == string(network.CorsErrorMissingAllowOriginHeader)
			})
		expectPreflightRefused(t, seen, "GET with the token from another origin", "xo/read-token?")
		if r := got.ReadNoCors; !r.Fetched || r.Type != "opaque" || r.Status != 0 || r.Text != "" {
			t.Errorf("no-cors GET from another origin: the page got %+v, want an opaque answer", r)
		}
		// Writes: refused before a handler, with a credential or not.
		if got.Publish.Fetched {
			t.Errorf("POST with the token from another origin: the page read %+v, want a failed fetch", got.Publish)
		}
		expectPreflightRefused(t, seen, "POST with the token from another origin", "via=fetch-token")
		for _, k := range []string{"no-cors-cookie", "no-cors-token"} {
			seen.expect(t, k+" POST from another origin: want 403", "via="+k, func(r response) bool { return r.Status == 403 })
		}
		if r := got.NoCorsCookie; !r.Fetched || r.Type != "opaque" {
			t.Errorf("no-cors POST with the cookie from another origin: the page got %+v, want an opaque answer", r)
		}

		// The EventSource's stream is served, but fails CORS: the
		// browser closes it and the page sees no event.
		var ok bool
		b.Eval(jsCall(`(url) => {
			window.xo = {open: false, ids: []};
			window.xoES = new EventSource(url);
			xoES.onopen = () => { xo.open = true; };
			xoES.addEventListener('entry', e => xo.ids.push(JSON.parse(e.data).id));
			return true; }`, api+"/v1/logs/xo-live/stream?token="+url.QueryEscape(testToken)), &ok)
		b.Wait("the other page's EventSource is closed", `window.xoES.readyState === EventSource.CLOSED`, 10*time.Second)
		var stream struct {
			Open bool
			IDs  []string
		}
		seen.expect(t, "EventSource from another origin: want it served without Access-Control-Allow-Origin, the browser refusing it",
			"/xo-live/stream?", func(r response) bool {
				return r.Status == 200 && r.AllowOrigin == "" && r.CORSError == string(network.CorsErrorMissingAllowOriginHeader)
			})
		b.Eval(`window.xo`, &stream)
		if stream.Open || len(stream.IDs) > 0 {
			t.Errorf("EventSource with ?token= from another origin: the page got %+v, want nothing", stream)
		}

		// A form post carrying the cookie, the classic CSRF: the top
		// frame shows the server's refusal.
		b.Eval(formPostJS(api+"/ui/api/v1/logs/xo-main?via=form", ids["form"]), &ok)
		b.waitNavigated("the form post's refusal", fmt.Sprintf(`location.origin === %q && document.body?.innerText.includes('origin_not_allowed')`, api), 10*time.Second)

		// Every attempt above has been answered: none wrote.
		entries := logEntries(t, a, api, "xo-main")
		for k, id := range ids {
			if entries[id] {
				t.Errorf("%s from another origin wrote entry %q to the log", k, id)
			}
		}
		if !entries["before"] {
			t.Errorf("the log lost the entry written before the test: %v", entries)
		}
	})
	t.Logf("cross-origin browser test took %v", time.Since(start))
}

// pageServer serves a blank page on its own origin and returns the origin.
func pageServer(t *testing.T) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><meta charset="utf-8"><link rel="icon" href="data:,"><title>another origin</title><body><p>a page on another origin</p></body></html>`)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// fetchResult is what attemptJS reports of one fetch.
type fetchResult struct {
	Fetched bool   // the promise resolved
	Type    string // the Response's type: "cors", "opaque", ...
	Status  int
	Text    string
	Err     string // why it rejected
}

// attemptJS is a JavaScript function (url, init) that fetches and resolves
// to a fetchResult, never rejecting.
const attemptJS = `(async (url, init) => {
	try {
		const r = await fetch(url, init);
		return {fetched: true, type: r.type, status: r.status, text: await r.text()};
	} catch (e) {
		return {fetched: false, err: String(e)};
	}
})`

// formPostJS is a JavaScript expression that submits, in the top frame, a
// text/plain form whose body is the JSON {"id": id, "data": "="}: a
// publish that needs no script permission and no preflight.
func formPostJS(action, id string) string {
	return jsCall(`(action, name) => {
		const f = document.createElement('form');
		f.method = 'POST';
		f.enctype = 'text/plain';
		f.action = action;
		const i = document.createElement('input');
		i.type = 'hidden';
		i.name = name;
		i.value = '"}';
		f.append(i);
		document.body.append(f);
		f.submit();
		return true; }`, action, `{"id":"`+id+`","data":"`)
}

// jsCall is the JavaScript expression that calls the function fn with
// args, each written as JSON.
func jsCall(fn string, args ...any) string {
	js := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			panic(fmt.Sprintf("jsCall: %v", err)) // a test's own constant
		}
		js[i] = string(b)
	}
	return "(" + fn + ")(" + strings.Join(js, ", ") + ")"
}

// waitNavigated waits until the JavaScript expression is truthy in the
// tab, for at most within, across the navigation the page started (which
// ends a chromedp.Poll).
func (b *browser) waitNavigated(what, expr string, within time.Duration) {
	b.T.Helper()
	testcluster.Eventually(b.T, within, func() error {
		ctx, cancel := context.WithTimeout(b.Context(), 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !ok {
			return fmt.Errorf("%s: not true yet: %s", what, expr)
		}
		return nil
	})
}

// responses are what the browser saw of its requests, as DevTools does:
// the server's status and headers even when the page may not read them (an
// opaque or CORS-refused answer), and why the browser refused an answer.
type responses struct {
	mu   sync.Mutex
	byID map[network.RequestID]*response
}

type response struct {
	Method      string
	URL         string
	Status      int64
	AllowOrigin string // Access-Control-Allow-Origin
	CORSError   string // the browser's reason to keep the answer from the page
}

func listenResponses(t *testing.T, b *browser) *responses {
	rs := &responses{byID: map[network.RequestID]*response{}}
	get := func(id network.RequestID) *response {
		if rs.byID[id] == nil {
			rs.byID[id] = &response{}
		}
		return rs.byID[id]
	}
	headers := func(r *response, h network.Headers) {
		for k, v := range h {
			if strings.EqualFold(k, "Access-Control-Allow-Origin") {
				r.AllowOrigin = fmt.Sprint(v)
			}
		}
	}
	// fn runs on the tab's reading goroutine: it only records.
	err := chromedp.Listen(b.Context(), func(ev any) {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.Request != nil {
				r := get(e.RequestID)
				r.Method, r.URL = e.Request.Method, e.Request.URL
			}
		case *network.EventResponseReceived:
			if e.Response != nil {
				r := get(e.RequestID)
				r.Status = e.Response.Status
				headers(r, e.Response.Headers)
			}
		case *network.EventResponseReceivedExtraInfo: // also for an answer CORS refuses
			r := get(e.RequestID)
			r.Status = e.StatusCode
			headers(r, e.Headers)
		case *network.EventLoadingFailed:
			if e.CorsErrorStatus != nil {
				get(e.RequestID).CORSError = string(e.CorsErrorStatus.CorsError)
			}
		}
	})
	if err != nil {
		t.Fatalf("listen to the browser's network events: %v", err)
	}
	return rs
}

// expect waits until the browser saw, of its request whose URL contains
// marker, what want accepts; if it does not within 10 s, the test fails
// and goes on.
func (rs *responses) expect(t *testing.T, what, marker string, want func(r response) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rs.mu.Lock()
		var seen []response
		for _, r := range rs.byID {
			if strings.Contains(r.URL, marker) {
				seen = append(seen, *r)
			}
		}
		rs.mu.Unlock()
		if slices.ContainsFunc(seen, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the browser saw %+v", what, seen)
			return
		}
	}
}

// expectPreflightRefused waits until the browser saw the server refuse the
// preflight of the request whose URL contains marker, and so never sent
// the request.
func expectPreflightRefused(t *testing.T, seen *responses, what, marker string) {
	t.Helper()
	seen.expect(t, what+": want the preflight answered 403", marker,
		func(r response) bool { return r.Method == http.MethodOptions && r.Status == 403 })
	seen.expect(t, what+": want the browser to fail it for its preflight", marker,
		func(r response) bool { return strings.HasPrefix(r.CORSError, "Preflight") })
}

// logEntries returns the ids of the entries of the log, read through the
// API with the token.
func logEntries(t *testing.T, a *apiClient, api, name string) map[string]bool {
	t.Helper()
	var read struct {
		Entries []struct{ ID string }
	}
	a.must("GET", api+"/v1/logs/"+name+"?limit=1000", "", &read)
	ids := map[string]bool{}
	for _, e := range read.Entries {
		ids[e.ID] = true
	}
	return ids
}

// expectEntries fails the test unless the log holds entries with the ids.
func expectEntries(t *testing.T, a *apiClient, api, name string, ids ...string) {
	t.Helper()
	got := logEntries(t, a, api, name)
	for _, id := range ids {
		if !got[id] {
			t.Errorf("log %s has no entry %q: %v", name, id, got)
		}
	}
}
