package peerrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"shoal/internal/clusterport"
	"shoal/internal/faultnet"
	"shoal/internal/leakcheck"
	"shoal/internal/testlog"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// node is one side of a test: a cluster port with a peer rpc server and
// client.
type node struct {
	name   string
	port   *clusterport.Port
	server *Server
	client *Client
	gate   *faultnet.Gate
}

func (n *node) addr() string { return n.port.Addr().String() }

func newNode(t *testing.T, name string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := faultnet.NewGate()
	logger := testlog.Logger(t, slog.LevelDebug)
	port, err := clusterport.New(ln, clusterport.Config{NodeName: name, Dial: gate.DialContext, Logger: logger,
		HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(port, ServerConfig{Logger: logger,
		EncodeError: func(err error) []byte { return []byte("remote: " + err.Error()) }})
	if err != nil {
		t.Fatal(err)
	}
	cl := NewClient(port, ClientConfig{Logger: logger, DialTimeout: 500 * time.Millisecond, WriteTimeout: time.Second,
		DecodeError: func(b []byte) error { return errors.New(string(b)) }})
	n := &node{name: name, port: port, server: srv, client: cl, gate: gate}
	t.Cleanup(func() {
		cl.Close()
		srv.Close()
		port.Close()
	})
	return n
}

func TestCall_RoundTripNamesTheCaller(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.Handle("echo", func(ctx context.Context, from string, body []byte) ([]byte, error) {
		return append([]byte(from+":"), body...), nil
	})
	got, err := a.client.Call(context.Background(), "b", b.addr(), "echo", []byte("hi"))
	if err != nil || string(got) != "a:hi" {
		t.Fatalf("got %q, %v; want a:hi", got, err)
	}
}

// TestCall_PipelinedCallsEachGetTheirOwnAnswer: many calls in flight on
// one connection, answered out of order, each gets its own answer.
func TestCall_PipelinedCallsEachGetTheirOwnAnswer(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.Handle("slow-echo", func(ctx context.Context, from string, body []byte) ([]byte, error) {
		if body[0]%2 == 0 {
			time.Sleep(5 * time.Millisecond) // answers come back out of order
		}
		return body, nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte{byte(i), byte(i >> 8)}
			got, err := a.client.Call(context.Background(), "b", b.addr(), "slow-echo", body)
			if err != nil || !bytes.Equal(got, body) {
				errs <- fmt.Errorf("call %d: got %v, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a.client.mu.Lock()
	conns := len(a.client.conns)
	a.client.mu.Unlock()
	if conns != 1 {
		t.Fatalf("%d connections to one peer, want 1", conns)
	}
}

func TestCall_HandlerErrorAndUnknownMethod(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.Handle("fail", func(ctx context.Context, from string, body []byte) ([]byte, error) {
		return nil, errors.New("no such log")
	})
	_, err := a.client.Call(context.Background(), "b", b.addr(), "fail", nil)
	if err == nil || err.Error() != "remote: no such log" {
		t.Fatalf("got %v, want the handler's error through the codec", err)
	}
	_, err = a.client.Call(context.Background(), "b", b.addr(), "nope", nil)
	if !errors.Is(err, ErrNoMethod) {
		t.Fatalf("got %v, want ErrNoMethod", err)
	}
}

func TestCall_NoPeerIsNotDelivered(t *testing.T) {
	a := newNode(t, "a")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, err = a.client.Call(context.Background(), "b", dead, "echo", nil)
	if !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("got %v, want ErrNotDelivered", err)
	}
	// A node that is not the one named refuses the connection: not
	// delivered either.
	c := newNode(t, "c")
	_, err = a.client.Call(context.Background(), "b", c.addr(), "echo", nil)
	if !errors.Is(err, ErrNotDelivered) || !errors.Is(err, clusterport.ErrRefused) {
		t.Fatalf("got %v, want a refused, undelivered call", err)
	}
}

// TestCall_FrozenPeerIsNotDelivered: a peer that accepts TCP but answers
// nothing (docker pause, a killed container's address) costs the dial
// timeout, and the call is known not to have reached it.
func TestCall_FrozenPeerIsNotDelivered(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.Handle("echo", func(ctx context.Context, from string, body []byte) ([]byte, error) { return body, nil })
	a.gate.Pause(b.addr())
	_, err := a.client.Call(context.Background(), "b", b.addr(), "echo", nil)
	if !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("got %v, want ErrNotDelivered", err)
	}
	a.gate.Resume(b.addr())
	if _, err := a.client.Call(context.Background(), "b", b.addr(), "echo", []byte("x")); err != nil {
		t.Fatalf("after the thaw: %v", err)
	}
}

// TestCall_AnswerThatNeverComesIsOutcomeUnknown: once written, a call
// whose caller gives up, or whose connection breaks, may have been acted
// on.
func TestCall_AnswerThatNeverComesIsOutcomeUnknown(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	started := make(chan struct{}, 2)
	b.server.Handle("hang", func(ctx context.Context, from string, body []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := a.client.Call(ctx, "b", b.addr(), "hang", nil)
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("caller gave up: got %v, want ErrOutcomeUnknown", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := a.client.Call(context.Background(), "b", b.addr(), "hang", nil)
		done <- err
	}()
	<-started
	b.server.Close() // the peer goes away with the call
	if err := <-done; !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("peer went away: got %v, want ErrOutcomeUnknown", err)
	}
}

// TestCall_ReconnectsAfterTheConnectionBroke: the next call dials again.
func TestCall_ReconnectsAfterTheConnectionBroke(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.Handle("echo", func(ctx context.Context, from string, body []byte) ([]byte, error) { return body, nil })
	if _, err := a.client.Call(context.Background(), "b", b.addr(), "echo", nil); err != nil {
		t.Fatal(err)
	}
	a.gate.Block(b.addr()) // severs the connection a dialed
	if _, err := a.client.Call(context.Background(), "b", b.addr(), "echo", nil); err == nil {
		t.Fatal("a call through a partition succeeded")
	}
	a.gate.Heal()
	if got, err := a.client.Call(context.Background(), "b", b.addr(), "echo", []byte("again")); err != nil || string(got) != "again" {
		t.Fatalf("after healing: %q, %v", got, err)
	}
}

func TestStream_OpensToItsHandler(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.HandleStream("upper", func(ctx context.Context, from string, conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "%s says %s", from, bytes.ToUpper([]byte(line)))
		}
	})
	conn, err := a.client.OpenStream(context.Background(), "b", b.addr(), "upper")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "hello\n")
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "a says HELLO\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if _, err := a.client.OpenStream(context.Background(), "b", b.addr(), "nope"); !errors.Is(err, ErrNoMethod) {
		t.Fatalf("unknown stream: got %v, want ErrNoMethod", err)
	}
}

func TestServer_CloseEndsStreamsAndCalls(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b.server.HandleStream("hold", func(ctx context.Context, from string, conn net.Conn) {
		defer conn.Close()
		<-ctx.Done()
	})
	conn, err := a.client.OpenStream(context.Background(), "b", b.addr(), "hold")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b.server.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("stream after the server closed: %v, want EOF", err)
	}
}

func frameSeeds() [][]byte {
	req, _ := appendFrame(nil, frame{typ: frameRequest, id: 7, method: "consensus.apply", body: []byte("batch")})
	ans, _ := appendFrame(nil, frame{typ: frameAnswer, id: 7, body: []byte{1, 2, 3}})
	nom, _ := appendFrame(nil, frame{typ: frameNoMethod, id: 1})
	return [][]byte{req, ans, nom, {0}, {5, 1, 0x80}, {3, 9, 1, 1}, {4, 1, 1, 5, 'x'}}
}

// FuzzReadFrame checks that a frame is never read past MaxFrame, that
// reading never panics and fails only with ErrBadFrame or io.EOF, and that
// what it accepts encodes back to the same bytes.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		fr, err := readFrame(bufio.NewReader(r))
		if err != nil {
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, io.EOF) {
				t.Fatalf("error %v is neither ErrBadFrame nor EOF", err)
			}
			return
		}
		again, err := appendFrame(nil, fr)
		if err != nil {
			t.Fatalf("accepted %+v, which does not encode: %v", fr, err)
		}
		if !bytes.Equal(again, in[:len(again)]) {
			t.Fatalf("accepted %x as %+v, which encodes as %x", in, fr, again)
		}
	})
}
