package kv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// streamBlock is one block of fields of an event stream, as a client
// following the SSE specification reads it: an event (typ, data), an id
// alone (a position), or a retry hint.
type streamBlock struct {
	id, typ, data, retry string
}

// watchStream opens a watch on url with lastID as Last-Event-ID (if not
// empty) and returns its blocks and a function that closes it.
func watchStream(t *testing.T, url, lastID string) (<-chan streamBlock, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := watchHTTP.Do(req)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("watch: %d", resp.StatusCode)
	}
	out := make(chan streamBlock, 4096)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var b streamBlock
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if b != (streamBlock{}) {
					out <- b
				}
				b = streamBlock{}
				continue
			}
			if strings.HasPrefix(line, ":") {
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				b.id = value
			case "event":
				b.typ = value
			case "data":
				b.data = value
			case "retry":
				b.retry = value
			}
		}
	}()
	return out, cancel
}

// nextBlock returns the next block that is not synced.
func nextBlock(t *testing.T, ch <-chan streamBlock) streamBlock {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case b, ok := <-ch:
			if !ok {
				t.Fatalf("the watch ended")
			}
			if b.typ != string(EventSynced) {
				return b
			}
		case <-timeout:
			t.Fatalf("nothing on the watch within 20s")
		}
	}
}

// nextEvent returns the next change event, skipping positions and
// hints; lastID follows every id seen, as an EventSource's does. It fails
// the test if no event comes within 30 s (positions and heartbeats keep
// coming on a live stream, so nextBlock's own bound is not enough).
func nextEvent(t *testing.T, ch <-chan streamBlock, lastID *string) (string, EntryJSON) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no change event within 30s (only positions and hints)")
		}
		b := nextBlock(t, ch)
		if b.id != "" {
			*lastID = b.id
		}
		if b.typ == "" {
			continue
		}
		var e EntryJSON
		if b.typ != string(EventResync) {
			if err := json.Unmarshal([]byte(b.data), &e); err != nil {
				t.Fatalf("%s data %q: %v", b.typ, b.data, err)
			}
		} else {
			e.Key = b.data // the resync's reason, for the test to read
		}
		return b.typ, e
	}
}

func TestWatch_StartsWithRetryAndPosition(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	ch, _ := watchStream(t, n.serve().URL+"/v1/kv?prefix=a/&watch=true", "")
	if b := nextBlock(t, ch); b.retry != fmt.Sprint(watchRetry.Milliseconds()) {
		t.Fatalf("first block %+v, want the retry hint", b)
	}
	if b := nextBlock(t, ch); b.id == "" || b.typ != "" {
		t.Fatalf("second block %+v, want a position (an id alone)", b)
	}
}

// TestWatch_ResumeMissesNothing: a watch closed and resumed with the last
// id it saw, again and again while a writer writes, gets every change
// exactly once, in order; by header or by ?last_event_id.
func TestWatch_ResumeMissesNothing(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	base := n.serve().URL + "/v1/kv?prefix=r/&watch=true"
	const total = 300
	done := make(chan struct{})
	write := func() {
		defer close(done)
		for i := range total {
			n.put(fmt.Sprintf("r/%03d", i), "v")
			if i%7 == 0 {
				n.put(fmt.Sprintf("other/%d", i), "not watched")
			}
		}
	}
	var got []string
	lastID := ""
	for round := 0; len(got) < total; round++ {
		url, header := base, lastID
		if round%2 == 1 && lastID != "" {
			url, header = base+"&last_event_id="+lastID, ""
		}
		ch, stop := watchStream(t, url, header)
		if round == 0 {
			// Only now: a watch without an id sends the changes made
			// after it opened, and watchStream returns once it has.
			go write()
		}
		for i := 0; i < 23 && len(got) < total; i++ {
			typ, e := nextEvent(t, ch, &lastID)
			if typ == string(EventResync) {
				t.Fatalf("round %d: resync (%s), want a resume", round, e.Key)
			}
			got = append(got, e.Key)
		}
		stop()
	}
	<-done
	if err := checkOnceInOrder(got, "r/", total); err != nil {
		t.Fatal(err)
	}
}

// checkOnceInOrder reports whether got is prefix000 .. prefix<total-1>,
// each once, in order.
func checkOnceInOrder(got []string, prefix string, total int) error {
	if len(got) != total {
		return fmt.Errorf("got %d events, want %d", len(got), total)
	}
	for i, k := range got {
		if want := fmt.Sprintf("%s%03d", prefix, i); k != want {
			return fmt.Errorf("event %d is %s, want %s (a change missed or repeated)", i, k, want)
		}
	}
	return nil
}

// TestCheckOnceInOrder_NegativeControl: the checker catches a missed and
// a repeated change.
func TestCheckOnceInOrder_NegativeControl(t *testing.T) {
	if err := checkOnceInOrder([]string{"r/000", "r/001", "r/002"}, "r/", 3); err != nil {
		t.Fatalf("a complete history: %v", err)
	}
	for _, bad := range [][]string{{"r/000", "r/002", "r/003"}, {"r/000", "r/000", "r/001"}, {"r/000", "r/001"}} {
		if checkOnceInOrder(bad, "r/", 3) == nil {
			t.Fatalf("%v passed the checker", bad)
		}
	}
}

// TestWatch_ResyncWhenTheHistoryCannotCover: an id the history does not
// reach (too old, of another run or node, or not an id) gets a resync
// event, the state under the prefix, then the changes.
func TestWatch_ResyncWhenTheHistoryCannotCover(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	base := n.serve().URL + "/v1/kv?prefix=s/&watch=true"
	n.kv.bus.mu.Lock()
	n.kv.bus.maxEvents = 5
	n.kv.bus.mu.Unlock()

	lastID := ""
	ch, stop := watchStream(t, base, "")
	n.put("s/a", "1")
	if typ, e := nextEvent(t, ch, &lastID); typ != "new_key" || e.Key != "s/a" {
		t.Fatalf("got %s %s", typ, e.Key)
	}
	stop()
	firstID := lastID
	for i := range 6 { // more than the history keeps
		n.put(fmt.Sprintf("s/%d", i), "v")
	}
	n.del("s/0")
	n.put("other/x", "v")

	for _, tt := range []struct{ id, reason string }{
		{firstID, resyncTrimmed},
		{"0123456789abcdef-1", resyncUnknown},
		{"garbage", resyncInvalid},
		{n.kv.bus.epoch + "-999999", resyncInvalid},
	} {
		ch, stop := watchStream(t, base, tt.id)
		b := nextBlock(t, ch)
		for b.retry != "" || b.typ == "" {
			b = nextBlock(t, ch)
		}
		var r ResyncJSON
		if b.typ != string(EventResync) || json.Unmarshal([]byte(b.data), &r) != nil || r.Reason != tt.reason || r.Message == "" || r.Node != "n1" {
			t.Fatalf("id %q: got %+v, want a resync (%s)", tt.id, b, tt.reason)
		}
		// The state: every live key under the prefix, in key order.
		var keys []string
		id := ""
		for len(keys) < 6 {
			typ, e := nextEvent(t, ch, &id)
			if typ != "new_key" {
				t.Fatalf("id %q: state event %s %s, want new_key", tt.id, typ, e.Key)
			}
			keys = append(keys, e.Key)
		}
		if got := strings.Join(keys, ","); got != "s/1,s/2,s/3,s/4,s/5,s/a" {
			t.Fatalf("id %q: state %s", tt.id, got)
		}
		// Then the changes, with ids that resume.
		n.put("s/after", tt.reason)
		if typ, e := nextEvent(t, ch, &id); typ != "new_key" || e.Key != "s/after" || id == "" {
			t.Fatalf("id %q: after the state got %s %s (id %q)", tt.id, typ, e.Key, id)
		}
		stop()
		n.del("s/after")
		ch, stop = watchStream(t, base, id)
		if typ, e := nextEvent(t, ch, &id); typ != "key_removed" || e.Key != "s/after" {
			t.Fatalf("resumed after a resync: got %s %s, want the removal", typ, e.Key)
		}
		stop()
	}
}
