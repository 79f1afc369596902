package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/httpjson"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// TestDiskAlarm_RefusesWritesClusterWideUntilSpaceIsFreed: one node's
// disk runs low; every node refuses writes with 507 disk_full (not 500,
// not no_leader), reads go on, the alarm shows in status, ready and
// metrics; once space is freed, writes resume without a restart.
func TestDiskAlarm_RefusesWritesClusterWideUntilSpaceIsFreed(t *testing.T) {
	const minFree = 100 << 20
	var free atomic.Uint64
	free.Store(10 << 30)
	c := testcluster.New(t, 3, testcluster.WithModules("log"), testcluster.WithConfig(func(i int, cfg *agent.Config) {
		cfg.MinFreeDisk = minFree
		if i == 2 {
			cfg.DiskFree = func(string) (uint64, error) { return free.Load(), nil }
		} else {
			cfg.DiskFree = func(string) (uint64, error) { return 10 << 30, nil }
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	entry := c.Node(0)
	cl := clientOf(t, entry)
	if _, err := cl.Publish(ctx, "orders", "before", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}

	free.Store(minFree - 1) // node 2's disk is nearly full
	testcluster.Eventually(t, 30*time.Second, func() error {
		_, err := cl.Publish(ctx, "orders", fmt.Sprint("during-", time.Now().UnixNano()), json.RawMessage(`2`))
		var e *httpjson.Error
		switch {
		case err == nil:
			return errors.New("a write was still accepted")
		case errors.As(err, &e) && e.Status == http.StatusInsufficientStorage && e.Code == "disk_full":
			return nil
		}
		t.Fatalf("a write during the alarm: %v, want 507 disk_full", err)
		return nil
	})
	// Reads go on; the node stays ready and says why writes fail.
	if page, err := cl.Read(ctx, "orders", 1, 10, true); err != nil || len(page.Entries) == 0 {
		t.Fatalf("a read during the alarm: %v %v", page, err)
	}
	resp, err := http.Get(entry.URL() + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Alarms struct {
			DiskFull []string `json:"disk_full"`
		} `json:"alarms"`
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil || len(status.Alarms.DiskFull) != 1 || status.Alarms.DiskFull[0] != c.Node(2).Name {
		t.Fatalf("status alarms %+v (%v), want [%s]", status.Alarms, err, c.Node(2).Name)
	}
	if err := cl.Ready(ctx); err != nil {
		t.Fatalf("ready during the alarm: %v", err)
	}
	if v := moduletest.MetricValue(t, c.Node(2).Agent().Registry(), "shoal_disk_alarm"); v != 1 {
		t.Fatalf("shoal_disk_alarm on the full node = %v, want 1", v)
	}

	free.Store(10 << 30) // space freed
	testcluster.Eventually(t, 30*time.Second, func() error {
		_, err := cl.Publish(ctx, "orders", "after", json.RawMessage(`3`))
		return err
	})
}
