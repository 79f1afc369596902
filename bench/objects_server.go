package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/coder/websocket"
)

// The objects scenario's peers run in child processes of their own, so
// that their CPU time and memory are read from /proc like the shoal
// nodes': the scenario starts this program again as
// "bench objects-server -kind centrifuge|baseline -addr 127.0.0.1:port".
func init() {
	register(scenario{
		name:    "objects-server",
		summary: "(internal) a peer server of the objects scenario, started by it: -kind centrifuge or baseline",
		run:     runObjectsServer,
	})
}

// The channels (centrifuge) and sets (baseline) the peers serve: the
// object that changes, and the one idle subscribers follow.
const (
	objectsHotChannel  = "bench-object"
	objectsIdleChannel = "bench-idle"
)

func runObjectsServer(ctx context.Context, args []string, _ io.Writer) error {
	fs := flag.NewFlagSet("bench objects-server", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	kind := fs.String("kind", "", "centrifuge or baseline")
	addr := fs.String("addr", "", "127.0.0.1:port to listen on")
	writeDelay := fs.Duration("write-delay", 0, "centrifuge: the connections' WriteDelay (0: none, its default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || host != "127.0.0.1" {
		return fmt.Errorf("-addr must be 127.0.0.1:port, not %q", *addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	switch *kind {
	case "centrifuge":
		node, err := centrifugeNode(mux, *writeDelay)
		if err != nil {
			return err
		}
		defer func() { _ = node.Shutdown(context.Background()) }()
	case "baseline":
		baselineServer(mux)
	default:
		return fmt.Errorf("-kind must be centrifuge or baseline, not %q", *kind)
	}
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// centrifugeNode serves centrifuge's websocket at /connection/websocket
// (every connection is the user "bench"; subscribers may negotiate fossil
// delta on any channel, which is positioned) and a master websocket at /publish: each text
// frame it reads is the full object, published on the hot channel with
// delta on, which with the memory broker needs a history of at least one
// publication to diff against.
func centrifugeNode(mux *http.ServeMux, writeDelay time.Duration) (*centrifuge.Node, error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelError,
		LogHandler: func(e centrifuge.LogEntry) {
			fmt.Fprintf(os.Stderr, "level=error centrifuge: %s %v\n", e.Message, e.Fields)
		}})
	if err != nil {
		return nil, err
	}
	if writeDelay > 0 {
		// The credentials stay the request's (SetCredentials below).
		node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
			return centrifuge.ConnectReply{WriteDelay: writeDelay}, nil
		})
	}
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			// Positioning makes the hub diff against the broker's previous
			// publication (the history's last); without it, it diffs only
			// against a channel medium's latest publication, and with none
			// configured it sends the full data with delta negotiated.
			cb(centrifuge.SubscribeReply{Options: centrifuge.SubscribeOptions{
				AllowedDeltaTypes: []centrifuge.DeltaType{centrifuge.DeltaTypeFossil},
				EnablePositioning: true,
			}}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	ws := centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin:      func(*http.Request) bool { return true },
		MessageSizeLimit: 1 << 20,
	})
	mux.Handle("/connection/websocket", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := centrifuge.SetCredentials(r.Context(), &centrifuge.Credentials{UserID: "bench"})
		ws.ServeHTTP(w, r.WithContext(ctx))
	}))
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		masterLoop(w, r, func(data []byte) error {
			_, err := node.Publish(objectsHotChannel, data,
				centrifuge.WithDelta(true), centrifuge.WithHistory(16, time.Minute))
			return err
		})
	})
	return node, nil
}

// masterLoop accepts the master's websocket and hands every text frame
// to publish, until the master goes.
func masterLoop(w http.ResponseWriter, r *http.Request, publish func([]byte) error) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	for {
		_, data, err := conn.Read(r.Context())
		if err != nil {
			return
		}
		if err := publish(data); err != nil {
			fmt.Fprintf(os.Stderr, "level=error publish: %v\n", err)
		}
	}
}

// baselineQueue is the frames queued per baseline subscriber; a full
// queue drops the frame (a slow subscriber never slows the others, as in
// the other two systems).
const baselineQueue = 64

// baselineServer is the do-nothing fan-out: /ws?ch=bench-object (or
// bench-idle) adds a subscriber, /publish takes the master's frames and
// queues each, unchanged, on every subscriber of the hot set.
func baselineServer(mux *http.ServeMux) {
	var mu sync.Mutex
	subs := map[chan []byte]bool{}
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := conn.CloseRead(r.Context()) // answers pings and closes; done when the peer goes
		if r.URL.Query().Get("ch") != objectsHotChannel {
			<-ctx.Done()
			return
		}
		q := make(chan []byte, baselineQueue)
		mu.Lock()
		subs[q] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(subs, q)
			mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-q:
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := conn.Write(wctx, websocket.MessageText, b)
				cancel()
				if err != nil {
					return
				}
			}
		}
	})
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		masterLoop(w, r, func(data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			dropped := 0
			for q := range subs {
				select {
				case q <- data:
				default:
					dropped++
				}
			}
			if dropped > 0 {
				return fmt.Errorf("%d subscriber queue(s) full, frame dropped for them", dropped)
			}
			return nil
		})
	})
}

// The master runs in a child process of its own too: in the scenario's
// process it would wait behind the subscribers' goroutines for a
// processor, and the rate of changes would depend on how much each
// subscriber costs its client library. The scenario starts
// "bench objects-master -system objectsync|ws -addr 127.0.0.1:port"; the
// child installs the first state, prints "ready", changes the object
// -rate times a second (once -start-file exists) until SIGTERM, then prints what it sent.
func init() {
	register(scenario{
		name:    "objects-master",
		summary: "(internal) the master of the objects scenario, started by it",
		run:     runObjectsMaster,
	})
}

func runObjectsMaster(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench objects-master", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	system := fs.String("system", "", "objectsync (the Go client, set) or ws (one text frame per change to /publish)")
	addr := fs.String("addr", "", "127.0.0.1:port of the node or server")
	rate := fs.Int("rate", 100, "changes per second")
	size := fs.Int("object-size", 10240, "bytes of the object")
	startFile := fs.String("start-file", "", "after the first state, wait until this file exists before changing the object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || host != "127.0.0.1" || *rate < 1 {
		return fmt.Errorf("-addr must be 127.0.0.1:port (not %q) and -rate positive", *addr)
	}
	obj := newObjectTemplate(*size)
	var m objMaster
	switch *system {
	case "objectsync":
		m, err = dialObjectsyncMaster(ctx, "http://"+*addr, obj.at(time.Now().UnixMicro()))
	case "ws":
		m, err = dialWSMaster(ctx, *addr, obj.at(time.Now().UnixMicro()))
	default:
		err = fmt.Errorf("-system must be objectsync or ws, not %q", *system)
	}
	if err != nil {
		return err
	}
	defer m.close()
	fmt.Fprintln(out, "ready")
	for *startFile != "" {
		if _, err := os.Stat(*startFile); err == nil {
			break
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	t := time.NewTicker(time.Second / time.Duration(*rate))
	defer t.Stop()
	start := time.Now()
	var sent, errs int64
	var first error
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			continue
		case <-t.C:
		}
		if err := m.send(obj.at(time.Now().UnixMicro())); err != nil {
			errs++
			if first == nil {
				first = err
			}
			continue
		}
		sent++
	}
	fmt.Fprintf(out, "sent %d errors %d seconds %.3f first-error %v\n", sent, errs, time.Since(start).Seconds(), first)
	return nil
}
