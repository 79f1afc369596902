package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/coder/websocket"
)

// Readers are the light subscribers of a fan-out run: websocket
// connections that subscribe as a client does and then only count the
// updates they receive, without applying them. The 1,000
// subscribers do not fit on this machine as real clients (an applying
// client spends 100 µs or more of CPU per delivery, so 100,000 deliveries
// a second would need ten cores); as readers they cost a few µs each. The
// servers do the same work for a reader as for a client: same
// subscription, same frames, same flow control. The latency is measured
// on the real clients (-appliers) alone.

// objReaders is a set of readers of one system.
type objReaders struct {
	conns   []*websocket.Conn
	counted atomic.Int64
	ready   atomic.Int64 // readers that have their subscription confirmed
	failed  atomic.Pointer[error]
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

func (r *objReaders) deliveries() int64 { return r.counted.Load() }

func (r *objReaders) close() {
	r.cancel()
	var wg sync.WaitGroup
	for _, c := range r.conns {
		if c != nil {
			wg.Go(func() { _ = c.CloseNow() })
		}
	}
	wg.Wait()
	r.wg.Wait()
}

// readerProtocol is what a reader needs of a system's protocol.
type readerProtocol struct {
	// url of reader i, and the websocket subprotocol to ask for.
	url         func(i int) string
	subprotocol string
	// subscribe is the first message, and its websocket type; none if
	// the connection itself is the subscription (confirmed on opening).
	subscribe     []byte
	subscribeType websocket.MessageType
	// frame reads one frame: how many updates it holds, whether it
	// confirms the subscription, and what to answer (a pong), if anything.
	frame func(b []byte) (updates int, confirmed bool, answer []byte, err error)
}

// openReaders opens n readers and returns once each has its subscription
// confirmed.
func openReaders(ctx context.Context, n int, wire *atomic.Int64, p readerProtocol) (*objReaders, error) {
	rctx, cancel := context.WithCancel(context.Background())
	r := &objReaders{conns: make([]*websocket.Conn, n), cancel: cancel}
	hc := countingHTTP(wire)
	err := parallel(ctx, n, 16, func(i int) error {
		var conn *websocket.Conn
		var err error
		for range 3 { // a loaded server may be slow to upgrade
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			conn, _, err = websocket.Dial(dctx, p.url(i), &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{p.subprotocol}})
			dcancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
		conn.SetReadLimit(16 << 20)
		r.conns[i] = conn
		if p.subscribe == nil {
			r.ready.Add(1)
		} else if err := conn.Write(ctx, p.subscribeType, p.subscribe); err != nil {
			return err
		}
		r.wg.Go(func() { r.read(rctx, conn, p) })
		return nil
	})
	if err == nil {
		err = waitFor(ctx, 60*time.Second, "readers subscribed", func() bool {
			return r.ready.Load() >= int64(n) || r.failed.Load() != nil
		})
	}
	if err == nil && r.failed.Load() != nil {
		err = *r.failed.Load()
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// read counts one reader's updates until the run ends. Frames are read
// into one reused buffer: a reader allocates nothing per update.
func (r *objReaders) read(ctx context.Context, conn *websocket.Conn, p readerProtocol) {
	var buf bytes.Buffer
	confirmed := p.subscribe == nil
	for {
		typ, rd, err := conn.Reader(ctx)
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			return
		}
		updates, ok, answer, err := p.frame(buf.Bytes())
		if err != nil {
			r.failed.CompareAndSwap(nil, &err)
			return
		}
		r.counted.Add(int64(updates))
		if ok && !confirmed {
			confirmed = true
			r.ready.Add(1)
		}
		if answer != nil {
			if err := conn.Write(ctx, typ, answer); err != nil {
				return
			}
		}
	}
}

// objectsyncReaders: reader i on node i mod 3, subscribed to the object
// by id, speaking shoal.objects.v2 as the Go and browser clients do (a
// frame may hold several messages, one per line); each "object" or
// "patch" message is an update (the first, the object, confirms the
// subscription).
func (s *objectsyncSystem) openReaders(ctx context.Context, n int, wire *atomic.Int64) (objSubs, error) {
	return openReaders(ctx, n, wire, readerProtocol{
		url:           func(i int) string { return s.url(i) + "/v1/objects/ws" },
		subprotocol:   "shoal.objects.v2",
		subscribe:     []byte(`{"type":"subscribe","id":"` + objectsyncHotID + `"}`),
		subscribeType: websocket.MessageText,
		frame: func(b []byte) (int, bool, []byte, error) {
			updates, confirmed := 0, false
			for line := range bytes.SplitSeq(b, []byte{'\n'}) {
				switch {
				case bytes.HasPrefix(line, []byte(`{"type":"patch"`)):
					updates++
				case bytes.HasPrefix(line, []byte(`{"type":"object"`)):
					updates++
					confirmed = true
				case bytes.HasPrefix(line, []byte(`{"type":"error"`)):
					return 0, false, nil, fmt.Errorf("objectsync reader: %s", line)
				}
			}
			return updates, confirmed, nil, nil
		},
	})
}

// centrifugeReaders speak centrifuge's protobuf protocol as centrifuge-go
// does (connect, then subscribe with fossil delta), count the
// publications of each frame's replies and answer the server's pings.
func (s *centrifugeSystem) openReaders(ctx context.Context, n int, wire *atomic.Int64) (objSubs, error) {
	enc := protocol.NewProtobufCommandEncoder()
	connect, err := enc.Encode(&protocol.Command{Id: 1, Connect: &protocol.ConnectRequest{}})
	if err != nil {
		return nil, err
	}
	sub, err := enc.Encode(&protocol.Command{Id: 2, Subscribe: &protocol.SubscribeRequest{Channel: objectsHotChannel, Delta: "fossil"}})
	if err != nil {
		return nil, err
	}
	pong, err := enc.Encode(&protocol.Command{})
	if err != nil {
		return nil, err
	}
	return openReaders(ctx, n, wire, readerProtocol{
		url:           func(int) string { return "ws://" + s.addr + "/connection/websocket" },
		subprotocol:   "centrifuge-protobuf",
		subscribe:     append(connect, sub...),
		subscribeType: websocket.MessageBinary,
		frame: func(b []byte) (int, bool, []byte, error) {
			d := protocol.NewProtobufReplyDecoder(b)
			updates, confirmed := 0, false
			var answer []byte
			for {
				reply, err := d.Decode()
				if errors.Is(err, io.EOF) {
					return updates, confirmed, answer, nil
				}
				if err != nil {
					return 0, false, nil, fmt.Errorf("centrifuge reader: %w", err)
				}
				switch {
				case reply.Error != nil:
					return 0, false, nil, fmt.Errorf("centrifuge reader: reply %d: %s", reply.Id, reply.Error.Message)
				case reply.Id == 2 && reply.Subscribe != nil:
					confirmed = true
				case reply.Push != nil && reply.Push.Pub != nil:
					updates++
				case reply.Id == 0 && reply.Push == nil:
					answer = pong // the server's ping
				}
			}
		},
	})
}

// baselineReaders read the broadcast server's frames: each is an update,
// and the connection itself is the subscription.
func (s *baselineSystem) openReaders(ctx context.Context, n int, wire *atomic.Int64) (objSubs, error) {
	return openReaders(ctx, n, wire, readerProtocol{
		url:   func(int) string { return "ws://" + s.addr + "/ws?ch=" + objectsHotChannel },
		frame: func([]byte) (int, bool, []byte, error) { return 1, false, nil, nil },
	})
}
