package objectsync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"shoal/internal/testcluster"
	"shoal/objectsync/internal/protocol"
)

// TestCluster_IdleSubscriberMemory measures what an idle subscriber (a
// websocket with one subscription to a small object) costs the server: the
// growth of this process's heap and stacks per connection, the clients
// running in a child process (this test binary, re-run as
// TestHelperIdleClients). The target is 32 KiB.
func TestCluster_IdleSubscriberMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement, not run with -short")
	}
	c := newCluster(t, nil)
	putObject(t, c.Node(1), "idle", 1, `{"small":true}`)
	n := c.Node(1)
	const conns = 400
	measure := func() (heap, stack uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, ms.StackInuse
	}
	heap0, stack0 := measure()
	goroutines0 := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperIdleClients$")
	cmd.Env = append(os.Environ(), "OBJECTSYNC_IDLE_URL=ws://"+n.Addresses().HTTP+"/v1/objects/ws", fmt.Sprintf("OBJECTSYNC_IDLE_CONNS=%d", conns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the helper exits when its stdin closes
		cancel()
		_ = cmd.Wait()
	})
	testcluster.Eventually(t, 60*time.Second, func() error {
		var out struct {
			ObjectSync Status `json:"objectsync"`
		}
		r := must(t, n, "GET", "/v1/status", "", nil, 200)
		if err := json.Unmarshal(r.body, &out); err != nil {
			return err
		}
		if out.ObjectSync.Subscribers != conns {
			return fmt.Errorf("%d subscribers", out.ObjectSync.Subscribers)
		}
		return nil
	})
	heap1, stack1 := measure()
	heap := (int64(heap1) - int64(heap0)) / conns
	stack := (int64(stack1) - int64(stack0)) / conns
	per := heap + stack
	t.Logf("idle subscriber: %d bytes of server memory per connection: %d of heap, %d of stacks (%.1f goroutines)",
		per, heap, stack, float64(runtime.NumGoroutine()-goroutines0)/conns)
	if per > 48<<10 {
		t.Fatalf("an idle subscriber costs the server %d bytes; want at most 48 KiB", per)
	}
}

// TestHelperIdleClients is the child process of
// TestCluster_IdleSubscriberMemory: it opens idle subscribers and holds
// them until its stdin closes.
func TestHelperIdleClients(t *testing.T) {
	url := os.Getenv("OBJECTSYNC_IDLE_URL")
	if url == "" {
		t.Skip("the child process of TestCluster_IdleSubscriberMemory")
	}
	var conns int
	fmt.Sscan(os.Getenv("OBJECTSYNC_IDLE_CONNS"), &conns)
	var all []*websocket.Conn
	var readers sync.WaitGroup
	defer readers.Wait()
	for i := 0; i < conns; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		wc, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
		cancel()
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		all = append(all, wc)
		if err := wc.Write(context.Background(), websocket.MessageText, []byte(`{"type":"subscribe","id":"idle"}`)); err != nil {
			t.Fatal(err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				if _, _, err := wc.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, wc := range all {
		_ = wc.CloseNow()
	}
}
