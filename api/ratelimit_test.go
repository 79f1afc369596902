package api

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRateLimits_PerClientBuckets(t *testing.T) {
	rl, err := newRateLimits(prometheus.NewRegistry(), 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := rl.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := rl.allow("a", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over the burst: allowed %v, wait %v; want refused with a wait of one token (100ms)", ok, wait)
	}
	if ok, _ := rl.allow("b", now); !ok {
		t.Fatalf("another client was refused: buckets are per client")
	}
	// A refused request took nothing: one token later, one passes.
	if ok, _ := rl.allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Fatalf("a token later, still refused")
	}
	// Idle buckets are forgotten.
	rl.allow("c", now.Add(10*time.Minute))
	rl.mu.Lock()
	n := len(rl.buckets)
	rl.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets after everyone else was idle for 10 minutes, want 1", n)
	}
	if off, _ := newRateLimits(prometheus.NewRegistry(), 0, 0); off != nil {
		t.Fatalf("rate 0 should mean no limiter")
	}
}
