package ws

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

// TestWire_WriteWaitsForTheRest: what a non-blocking write left unwritten
// goes out before anything coder/websocket writes afterwards (a ping, a
// close frame), so the peer reads the data bytes whole, then the control
// frame's, whoever wrote last.
func TestWire_WriteWaitsForTheRest(t *testing.T) {
	server, client := tcpPair(t)
	w := newWire(server)
	if w.raw == nil {
		t.Fatal("a TCP connection has no raw descriptor")
	}
	// More than the socket buffers hold, the client not reading yet.
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	if !w.tryLock() {
		t.Fatal("tryLock on an idle wire failed")
	}
	w.writevLocked([][]byte{data[:1000], data[1000:]})
	rest := len(w.rest)
	w.mu.Unlock()
	if rest == 0 {
		t.Fatal("the socket took 16 MiB without a reader")
	}
	if w.tryLock() {
		t.Fatal("tryLock succeeded with a rest waiting")
	}
	control := []byte("\x89\x04ping")
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(control)
		wrote <- err
	}()
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(io.LimitReader(client, int64(len(data)+len(control))))
	if err != nil {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(data)+len(control), err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], control) {
		i := 0
		for i < len(data) && got[i] == data[i] {
			i++
		}
		t.Fatalf("the stream differs from the data then the control frame at byte %d of %d", i, len(got))
	}
	if len(w.rest) != 0 {
		t.Fatalf("%d bytes of rest left", len(w.rest))
	}
}

// TestFramer: headers as RFC 6455 section 5.2 has them for a final,
// unmasked text frame, at the lengths where the encoding changes; a
// batching connection's frames in one message, one per line.
func TestFramer(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendTextHeader(nil, c.n); !bytes.Equal(got, c.want) {
			t.Errorf("header of %d bytes: got %x, want %x", c.n, got, c.want)
		}
	}
	join := func(bufs [][]byte) string { return string(bytes.Join(bufs, nil)) }
	var f framer
	f.round = [][]byte{[]byte("a"), []byte("bc")}
	if got := join(f.frame(false)); got != "\x81\x01a\x81\x02bc" {
		t.Errorf("two frames: got %q", got)
	}
	if got := join(f.frame(true)); got != "\x81\x04a\nbc" {
		t.Errorf("two frames, batching: got %q", got)
	}
	f.round = [][]byte{[]byte("a")}
	if got := join(f.frame(true)); got != "\x81\x01a" {
		t.Errorf("one frame, batching: got %q", got)
	}
	f.release()
	if len(f.round) != 0 || len(f.bufs) != 0 {
		t.Error("release kept the round")
	}
}
