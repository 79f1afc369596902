package kv

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// writeScript writes an executable shell script into a temporary
// directory and returns its path.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	path := filepath.Join(t.TempDir(), "handler.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHandlers_ScriptGetsEnvAndStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	script := writeScript(t, fmt.Sprintf(`{ echo "$SHOAL_EVENT|$SHOAL_KEY|$SHOAL_VALUE|$SHOAL_NODE|$SHOAL_WRITER|${SHOAL_VALUE_OMITTED:-0}"; cat; echo; } >> %q
`, out))
	cfg := testConfig()
	cfg.Handlers = []string{"new_key,key_changed:prefix=config/=" + script}
	n := startNode(t, newFakeNet(), "n1", cfg)
	n.put("other/x", "ignored: prefix")
	v := n.put("config/a", "1")
	big := strings.Repeat("b", maxEnvValue+1)
	n.put("config/a", big)
	n.del("config/a") // key_removed: not subscribed
	testcluster.Eventually(t, 20*time.Second, func() error {
		if got := moduletest.MetricValue(t, n.reg, "shoal_kv_handler_runs_total", "kind", "script", "result", "success"); got != 2 {
			return fmt.Errorf("%v successful runs", got)
		}
		return nil
	})
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("got output %q, want two runs of two lines", b)
	}
	if want := "new_key|config/a|1|n1|n1|0"; lines[0] != want {
		t.Fatalf("env of run 1: got %q, want %q", lines[0], want)
	}
	var ev HandlerEvent
	if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
		t.Fatalf("stdin of run 1 %q: %v", lines[1], err)
	}
	if ev.Event != EventNewKey || ev.Node != "n1" || ev.Key != "config/a" || *ev.Value != "1" || *ev.Version != v || ev.UpdatedAt == "" {
		t.Fatalf("stdin of run 1: got %+v", ev)
	}
	if want := "key_changed|config/a||n1|n1|1"; lines[2] != want {
		t.Fatalf("env of run 2: got %q, want %q (value too large for the environment)", lines[2], want)
	}
	if !strings.Contains(lines[3], big) {
		t.Fatalf("stdin of run 2 lacks the large value")
	}
}

func TestHandlers_FailuresTimeoutsAndDrops(t *testing.T) {
	fail := writeScript(t, "echo oops >&2\nexit 3\n")
	slow := writeScript(t, "exec sleep 5\n")
	cfg := testConfig()
	cfg.Handlers = []string{"new_key=" + fail, "key_changed=" + slow}
	cfg.HandlerTimeout = 200 * time.Millisecond
	cfg.HandlerQueue = 1
	n := startNode(t, newFakeNet(), "n1", cfg)
	n.put("k", "0")
	for i := range 10 {
		n.put("k", fmt.Sprint(i+1)) // ten key_changed for a handler that times out
	}
	testcluster.Eventually(t, 30*time.Second, func() error {
		failed := moduletest.MetricValue(t, n.reg, "shoal_kv_handler_runs_total", "kind", "script", "result", "failure")
		timedOut := moduletest.MetricValue(t, n.reg, "shoal_kv_handler_runs_total", "kind", "script", "result", "timeout")
		dropped := moduletest.MetricValue(t, n.reg, "shoal_kv_handler_runs_total", "kind", "script", "result", "dropped")
		if failed != 1 || timedOut < 1 || timedOut+dropped != 10 {
			return fmt.Errorf("failure=%v timeout=%v dropped=%v", failed, timedOut, dropped)
		}
		return nil
	})
}

func TestHandlers_Webhook(t *testing.T) {
	var mu sync.Mutex
	var got []HandlerEvent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev HandlerEvent
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &ev) != nil {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
		if ev.Key == "fail" {
			http.Error(w, "no", 500)
		}
	}))
	defer hook.Close()
	cfg := testConfig()
	cfg.Webhooks = []string{hook.URL + "/all", "key_removed:prefix=x/=" + hook.URL + "/removed"}
	n := startNode(t, newFakeNet(), "n1", cfg)
	n.put("x/a", "1")
	n.del("x/a")
	n.put("fail", "v")
	summarize := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, ev := range got {
			if ev.Event != EventSynced {
				out = append(out, string(ev.Event)+" "+ev.Key)
			}
		}
		return out
	}
	testcluster.Eventually(t, 20*time.Second, func() error {
		if s := summarize(); len(s) < 4 {
			return fmt.Errorf("webhook got %v so far", s)
		}
		if f := moduletest.MetricValue(t, n.reg, "shoal_kv_handler_runs_total", "kind", "webhook", "result", "failure"); f != 1 {
			return fmt.Errorf("%v failures", f)
		}
		return nil
	})
	summary := summarize()
	want := []string{"new_key x/a", "key_removed x/a", "key_removed x/a", "new_key fail"}
	if !sameMultiset(summary, want) {
		t.Fatalf("webhook got %v, want %v in any order", summary, want)
	}
}

func TestBus_HandlerDropsAndWatcherIsCutOff(t *testing.T) {
	b := newBus()
	drops := 0
	handler := b.subscribe(func(Event) bool { return true }, 1, func() { drops++ })
	watcher := b.subscribe(prefixMatch("a/"), 1, nil)
	other := b.subscribe(prefixMatch("b/"), 1, nil)
	for i := range 3 {
		b.publish(Event{Type: EventNewKey, Entry: entry{Key: fmt.Sprintf("a/%d", i)}})
	}
	if drops != 2 || len(handler.ch) != 1 {
		t.Fatalf("handler: %d drops, %d queued; want 2 and 1", drops, len(handler.ch))
	}
	select {
	case <-watcher.lost:
	default:
		t.Fatalf("an overflowing watcher was not cut off")
	}
	if len(other.ch) != 0 {
		t.Fatalf("a watcher of b/ got events of a/")
	}
	b.publish(Event{Type: EventSynced})
	if len(other.ch) != 1 {
		t.Fatalf("synced is not filtered by prefix")
	}
}

func sameMultiset(a, b []string) bool {
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

func TestParseHandlerSpec(t *testing.T) {
	all := allEvents()
	tests := []struct {
		in      string
		want    HandlerSpec
		wantErr bool
	}{
		{in: "new_key,key_changed:prefix=config/=/path/to/script",
			want: HandlerSpec{Events: map[EventType]bool{EventNewKey: true, EventKeyChanged: true}, Prefix: "config/", Target: "/path/to/script"}},
		{in: "*=/bin/x", want: HandlerSpec{Events: all, Target: "/bin/x"}},
		{in: "key_removed=/bin/x=y", want: HandlerSpec{Events: map[EventType]bool{EventKeyRemoved: true}, Target: "/bin/x=y"}},
		{in: "synced:prefix==/bin/x", want: HandlerSpec{Events: map[EventType]bool{EventSynced: true}, Target: "/bin/x"}},
		{in: "new_key:prefix=a:b=/s", want: HandlerSpec{Events: map[EventType]bool{EventNewKey: true}, Prefix: "a:b", Target: "/s"}},
		{in: "/path/only", wantErr: true},
		{in: "new_key=", wantErr: true},
		{in: "bogus=/s", wantErr: true},
		{in: "new_key:suffix=x=/s", wantErr: true},
		{in: "new_key:prefix=x", wantErr: true},
		{in: "new_key:prefix=\x01=/s", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseHandlerSpec(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Fatalf("%q: got %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("%q: got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	for in, wantErr := range map[string]bool{
		"http://h/x": false, "https://h:8443/x?y=1": false, "new_key=http://h/x": false,
		"key_removed:prefix=a/=https://h": false, "ftp://h": true, "new_key=/path": true, "http://": true, "bogus=http://h": true,
	} {
		if _, err := ParseWebhookSpec(in); (err != nil) != wantErr {
			t.Fatalf("webhook %q: got error %v, want error %v", in, err, wantErr)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"max value 0":       func(c *Config) { c.MaxValue = 0 },
		"max value huge":    func(c *Config) { c.MaxValue = maxValueLimit + 1 },
		"ttl 0":             func(c *Config) { c.TombstoneTTL = 0 },
		"interval 0":        func(c *Config) { c.GossipInterval = 0 },
		"handler timeout 0": func(c *Config) { c.HandlerTimeout = 0 },
		"queue 0":           func(c *Config) { c.HandlerQueue = 0 },
		"heartbeat 0":       func(c *Config) { c.StreamHeartbeat = 0 },
		"bad handler":       func(c *Config) { c.Handlers = []string{"nope"} },
		"bad webhook":       func(c *Config) { c.Webhooks = []string{"ftp://x"} },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Fatalf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestConfig_BindFlags(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	c.BindFlags(fs)
	err := fs.Parse([]string{"--kv-max-value", "1024", "--kv-tombstone-ttl", "1h", "--kv-gossip-interval", "50ms",
		"--kv-handler", "new_key=/a", "--kv-handler", "key_removed=/b", "--kv-webhook", "http://h/x",
		"--kv-handler-timeout", "3s", "--kv-handler-queue", "7", "--kv-stream-heartbeat", "2s"})
	if err != nil {
		t.Fatal(err)
	}
	// The environment sets a repeatable flag once, with newlines.
	if err := fs.Set("kv-webhook", "http://h/y\nhttp://h/z"); err != nil {
		t.Fatal(err)
	}
	want := Config{MaxValue: 1024, TombstoneTTL: time.Hour, GossipInterval: 50 * time.Millisecond,
		Handlers: []string{"new_key=/a", "key_removed=/b"}, Webhooks: []string{"http://h/x", "http://h/y", "http://h/z"},
		HandlerTimeout: 3 * time.Second, HandlerQueue: 7, StreamHeartbeat: 2 * time.Second}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// plainFlagSet is a modules.FlagSet without Var.
type plainFlagSet struct{ fs *flag.FlagSet }

func (p plainFlagSet) IntVar(v *int, n string, d int, u string)       { p.fs.IntVar(v, n, d, u) }
func (p plainFlagSet) Int64Var(v *int64, n string, d int64, u string) { p.fs.Int64Var(v, n, d, u) }
func (p plainFlagSet) DurationVar(v *time.Duration, n string, d time.Duration, u string) {
	p.fs.DurationVar(v, n, d, u)
}
func (p plainFlagSet) StringVar(v *string, n string, d string, u string) { p.fs.StringVar(v, n, d, u) }
func (p plainFlagSet) BoolVar(v *bool, n string, d bool, u string)       { p.fs.BoolVar(v, n, d, u) }

func TestConfig_BindFlagsWithoutVar(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	c.BindFlags(plainFlagSet{fs})
	if err := fs.Parse([]string{"--kv-handler", "new_key=/a\nsynced=/b"}); err != nil {
		t.Fatal(err)
	}
	if got := c.handlerSpecs(); !reflect.DeepEqual(got, []string{"new_key=/a", "synced=/b"}) {
		t.Fatalf("got %q", got)
	}
}
