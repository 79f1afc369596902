package logstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/logstream"
)

// The cluster holds at most --log-max-logs logs: a publish or a PUT that
// would create one more is refused with 409 too_many_logs on every node
// (the cap travels in the command), existing logs keep working, and
// deleting one makes room.
func TestCluster_MaxLogs(t *testing.T) {
	h := newHarness(t, withLogConfig(func(c *logstream.Config) { c.MaxLogs = 2 }))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, follower := h.client(h.Leader()), h.client(h.Followers()[0])
	for _, name := range []string{"a", "b"} {
		if _, err := follower.Publish(ctx, name, "", []byte(`1`)); err != nil {
			t.Fatalf("publish to %s: %v", name, err)
		}
	}
	tooMany := func(what string, err error) {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "too_many_logs" {
			t.Fatalf("%s: got %v, want 409 too_many_logs", what, err)
		}
	}
	_, err := follower.Publish(ctx, "c", "", []byte(`1`))
	tooMany("a third log through a follower", err)
	_, err = leader.ConfigureLog(ctx, "d", client.LogRetention{MaxEntries: new(int64(5))})
	tooMany("a third log by PUT", err)
	for _, n := range []*testcluster.Node{h.Leader(), h.Followers()[0]} {
		resp, err := h.hc.Get(n.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "\nshoal_log_cap_refusals_total 1\n") {
			t.Fatalf("%s does not count its refusal: %s", n.Name, grepLines(string(b), "shoal_log_cap"))
		}
	}
	if _, err := leader.Publish(ctx, "a", "", []byte(`2`)); err != nil {
		t.Fatalf("an existing log: %v", err)
	}
	if _, err := leader.ConfigureLog(ctx, "b", client.LogRetention{MaxEntries: new(int64(5))}); err != nil {
		t.Fatalf("configure an existing log: %v", err)
	}
	if err := leader.DeleteLog(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.Publish(ctx, "c", "", []byte(`1`)); err != nil {
		t.Fatalf("a log after a delete made room: %v", err)
	}
	for _, n := range h.Nodes() {
		testcluster.Eventually(t, 20*time.Second, func() error {
			logs, err := h.client(n).Logs(ctx)
			if err != nil || len(logs) != 2 || logs[0].Name != "b" || logs[1].Name != "c" {
				return fmt.Errorf("%s holds %+v (%v), want b and c", n.Name, logs, err)
			}
			return nil
		})
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
