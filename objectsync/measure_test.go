package objectsync

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"shoal/internal/testcluster"
	"shoal/objectsync/client"
	"shoal/objectsync/internal/protocol"
)

// TestMeasure_FanOut is a measurement, not a check (run without -short;
// it asserts nothing about time): a master on node 0 changes one field of
// a 10 KB object 100 times a second for 3 s; subscribers on nodes 1 and
// 2 record the delay from the master's send to their own apply, and one
// raw subscriber counts the bytes of each frame. It logs p50/p99 latency
// and the bytes per update against the full object.
func TestMeasure_FanOut(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement, not run with -short")
	}
	const subscribers, rate, seconds = 40, 100, 3
	c := newCluster(t, nil)
	master := dial(t, c.Node(0))
	if err := master.Master("bench"); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 10_000)
	obj := func(n int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q,"t":%d}`, n, pad, time.Now().UnixNano()))
	}
	if err := master.SetWait(context.Background(), "bench", 0, obj(0)); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var lat []time.Duration
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	for i := range subscribers {
		s := dial(t, c.Node(1+i%2))
		if err := s.Subscribe("bench"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(s *client.Client) {
			defer wg.Done()
			last := ""
			for {
				ch := s.Changed()
				if st, ok := s.Get("bench"); ok && st.Version != last {
					last = st.Version
					var v struct{ T int64 }
					if json.Unmarshal(st.Object, &v) == nil && v.T > 0 {
						d := time.Since(time.Unix(0, v.T))
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
			}
		}(s)
	}
	// One raw subscriber counts the bytes of each frame.
	var frames, patchBytes, fullBytes int
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	raw, _, err := websocket.Dial(rctx, "ws://"+c.Node(2).Addresses().HTTP+"/v1/objects/ws", &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	rcancel()
	if err != nil {
		t.Fatal(err)
	}
	raw.SetReadLimit(1 << 20)
	defer raw.CloseNow()
	if err := raw.Write(context.Background(), websocket.MessageText, []byte(`{"type":"subscribe","id":"bench"}`)); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, b, err := raw.Read(ctx)
			if err != nil {
				return
			}
			var m protocol.Message
			_ = json.Unmarshal(b, &m)
			mu.Lock()
			switch m.Type {
			case protocol.TypePatch:
				frames++
				patchBytes += len(b)
			case protocol.TypeObject:
				fullBytes = len(b)
			}
			mu.Unlock()
		}
	}()

	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	start := time.Now()
	n := 0
	for time.Since(start) < seconds*time.Second {
		<-tick.C // pacing the load, not waiting for an event
		n++
		if err := master.Set("bench", n, obj(n)); err != nil {
			t.Fatalf("set %d: %v", n, err)
		}
	}
	final := fmt.Sprint(n)
	testcluster.Eventually(t, 30*time.Second, func() error {
		if st, _ := master.Get("bench"); st.Version != final {
			return fmt.Errorf("the master's last write (%s) not seen yet: %s", final, st.Version)
		}
		return nil
	})
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 || frames == 0 {
		t.Fatalf("nothing measured")
	}
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("%d updates in %s to %d subscribers: latency p50 %s, p99 %s (%d samples); %d B per patch frame vs %d B full object (%.1f%%)",
		n, elapsed.Round(time.Millisecond), subscribers, p(0.5), p(0.99), len(lat), patchBytes/frames, fullBytes, 100*float64(patchBytes/frames)/float64(fullBytes))
}
