package faultnet

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestGate_PauseQueuesWritesAndHoldsReadsUntilResume: a paused peer gets
// nothing and answers nothing, yet the connection survives; on resume the
// queued bytes go out in order and the answers arrive.
func TestGate_PauseQueuesWritesAndHoldsReadsUntilResume(t *testing.T) {
	a, g, c := dialEcho(t)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatalf("round trip before the pause: %v", err)
	}

	g.Pause(a)
	if !g.Paused(a) || !g.Drops(a) || g.Blocked(a) {
		t.Fatalf("paused=%v drops=%v blocked=%v, want true true false", g.Paused(a), g.Drops(a), g.Blocked(a))
	}
	for _, part := range []string{"one ", "two"} {
		if n, err := c.Write([]byte(part)); err != nil || n != len(part) {
			t.Fatalf("write while paused: %d, %v; want it queued", n, err)
		}
	}
	// Nothing was sent, so nothing comes back: the read times out.
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while paused: got %v, want a deadline error", err)
	}
	// A new dial still connects (the kernel answers for a frozen process).
	c2, err := dial(t, g, a)
	if err != nil {
		t.Fatalf("dial while paused: %v", err)
	}
	c2.Close()

	g.Resume(a)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("one two"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "one two" {
		t.Fatalf("after resume: read %q, %v; want the queued bytes echoed in order", buf, err)
	}
}

// TestGate_PauseHoldsAnAnswerAlreadyOnItsWay: bytes the peer sent before
// the pause do not arrive while it is paused.
func TestGate_PauseHoldsAnAnswerAlreadyOnItsWay(t *testing.T) {
	a, g, c := dialEcho(t)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	g.Pause(a) // the echo is on its way, or already in the socket buffer
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while paused: %d bytes, %v; want nothing until the deadline", n, err)
	}
}

// TestGate_CloseReleasesAPausedRead: closing the connection ends a read
// held by a pause.
func TestGate_CloseReleasesAPausedRead(t *testing.T) {
	a, g, c := dialEcho(t)
	g.Pause(a)
	got := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		got <- err
	}()
	c.Close()
	if err := <-got; err == nil {
		t.Fatal("read on a closed, paused connection succeeded")
	}
	g.Heal()
	if g.Paused(a) {
		t.Fatal("Heal left the address paused")
	}
}

// dialEcho dials a new echo server through a new gate; the connection is
// closed when the test ends.
func dialEcho(t *testing.T) (string, *Gate, net.Conn) {
	t.Helper()
	a := echoServer(t)
	g := NewGate()
	c, err := dial(t, g, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return a, g, c
}
