package objectsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/testcluster"
	"shoal/objectsync/internal/protocol"
)

// TestCluster_SlowSubscriberIsCollapsedNotLeftBehind: a subscriber that
// stops reading while its object changes fast is sent at most the flow
// window before the node waits for it; its queue then collapses into the
// full state, so when it reads again it gets fewer frames than there
// were versions, ends at the last version, and other subscribers never
// waited for it.
func TestCluster_SlowSubscriberIsCollapsedNotLeftBehind(t *testing.T) {
	cfg := testConfig()
	cfg.FlowWindow = 8 << 10
	cfg.SendQueue = 8
	cfg.PingInterval = time.Minute // the flow's pings may take 10 s: the test reads late on purpose
	c := newCluster(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Two slow subscribers: one speaks v1 (a message per frame), the
	// other v2, which gets what waited in its queue in fewer frames.
	slows := map[string]*websocket.Conn{}
	for _, sp := range []string{protocol.Subprotocol, protocol.BatchSubprotocol} {
		slow, _, err := websocket.Dial(ctx, "ws://"+c.Node(1).Addresses().HTTP+"/v1/objects/ws", &websocket.DialOptions{Subprotocols: []string{sp}})
		if err != nil {
			t.Fatal(err)
		}
		defer slow.CloseNow()
		if slow.Subprotocol() != sp {
			t.Fatalf("offered %s, got %q", sp, slow.Subprotocol())
		}
		slow.SetReadLimit(64 << 20)
		if err := slow.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"busy"}`)); err != nil {
			t.Fatal(err)
		}
		slows[sp] = slow
	}
	fast := dial(t, c.Node(1))
	if err := fast.Subscribe("busy"); err != nil {
		t.Fatal(err)
	}
	master := dial(t, c.Node(0))
	if err := master.Master("busy"); err != nil {
		t.Fatal(err)
	}
	const versions = 300 // about 28 KB of patch frames: over three windows
	pad := strings.Repeat("p", 64)
	for v := 1; v <= versions; v++ { // each committed: Set alone would coalesce versions
		if err := master.SetWait(ctx, "busy", v, map[string]any{"n": v, "pad": pad}); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprint(versions)
	awaitState(t, fast, "busy", want, []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, versions, pad)))
	m, _ := c.Node(1).Agent().Module("objectsync")
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n := testutil.ToFloat64(m.(*ObjectSync).m.collapses); n < 1 {
			return fmt.Errorf("%v collapses on the slow subscriber's node", n)
		}
		return nil
	})

	// They read again: patches up to the window, then full states, up to
	// the last version.
	for sp, slow := range slows {
		frames, messages, fulls, joined := 0, 0, 0, 0
		for last := ""; last != want; {
			_, b, err := slow.Read(ctx)
			if err != nil {
				t.Fatalf("%s: after %d frames (last version %s): %v", sp, frames, last, err)
			}
			frames++
			lines := strings.Split(string(b), "\n")
			if len(lines) > 1 {
				joined++
			}
			for _, line := range lines {
				var msg protocol.Message
				if err := json.Unmarshal([]byte(line), &msg); err != nil {
					t.Fatalf("%s: frame %d: %v", sp, frames, err)
				}
				messages++
				switch {
				case msg.Type == protocol.TypeObject:
					fulls++
					last = string(msg.Version)
				case msg.Type == protocol.TypePatch && (last == "" || string(msg.From) == last):
					last = string(msg.To)
				default:
					t.Fatalf("%s: frame %d after version %s: %s", sp, frames, last, line)
				}
			}
		}
		if messages >= versions || fulls < 2 {
			t.Fatalf("%s: the slow subscriber read %d messages (%d full states) for %d versions: nothing was collapsed", sp, messages, fulls, versions)
		}
		switch {
		case sp == protocol.Subprotocol && joined > 0:
			t.Fatalf("%s: %d frames carried several messages", sp, joined)
		case sp == protocol.BatchSubprotocol && joined == 0:
			t.Fatalf("%s: %d messages in %d frames, none joined", sp, messages, frames)
		}
	}
}
