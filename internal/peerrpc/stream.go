package peerrpc

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"shoal/internal/clusterport"
)

// StreamHandler serves one stream: from is the calling node's name, conn
// the stream, which the handler owns and must close. ctx ends when the
// server closes (which also closes conn).
type StreamHandler func(ctx context.Context, from string, conn net.Conn)

// A stream connection starts, after the cluster port header, with the
// method: one length byte and the name. The server answers one byte:
// streamOpen, then the connection is the method's; or streamNoMethod, and
// it is closed.
const (
	streamOpen     byte = 0
	streamNoMethod byte = 1
)

// HandleStream serves streams opened for method with h, replacing any
// handler it had.
func (s *Server) HandleStream(method string, h StreamHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamHs[method] = h
}

// NamedStreamHandler serves a family of streams: name is the one opened.
type NamedStreamHandler func(ctx context.Context, from, name string, conn net.Conn)

// HandleStreamPrefix serves every stream whose name starts with prefix and
// has no handler of its own with h (the longest matching prefix wins).
func (s *Server) HandleStreamPrefix(prefix string, h NamedStreamHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamPs[prefix] = h
}

func (s *Server) serveStream(nc net.Conn) {
	from := clusterport.PeerName(nc)
	_ = nc.SetDeadline(time.Now().Add(s.cfg.WriteTimeout))
	var n [1]byte
	if _, err := io.ReadFull(nc, n[:]); err != nil || n[0] == 0 {
		return
	}
	name := make([]byte, n[0])
	if _, err := io.ReadFull(nc, name); err != nil {
		return
	}
	s.mu.Lock()
	h, ok := s.streamHs[string(name)]
	if !ok {
		if nh := longestPrefix(s.streamPs, string(name)); nh != nil {
			h = func(ctx context.Context, from string, conn net.Conn) { nh(ctx, from, string(name), conn) }
		}
	}
	s.mu.Unlock()
	if h == nil {
		_, _ = nc.Write([]byte{streamNoMethod})
		return
	}
	if _, err := nc.Write([]byte{streamOpen}); err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	h(s.ctx, from, nc)
}

// OpenStream opens a stream to method on the node named to at addr. The
// caller owns the returned connection. ctx bounds the opening only. A
// failure wraps ErrNotDelivered (nothing reached the handler), or is
// ErrNoMethod.
func (c *Client) OpenStream(ctx context.Context, to, addr, method string) (net.Conn, error) {
	if method == "" || len(method) > maxMethodLen {
		return nil, fmt.Errorf("peer rpc: method name of %d bytes", len(method))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	nc, err := c.port.Dial(ctx, clusterport.KindStream, to, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotDelivered, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	var answer [1]byte
	_, err = nc.Write(append([]byte{byte(len(method))}, method...))
	if err == nil {
		_, err = io.ReadFull(nc, answer[:])
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: open stream %s on %s: %w", ErrNotDelivered, method, to, err)
	}
	if answer[0] != streamOpen {
		_ = nc.Close()
		return nil, fmt.Errorf("stream %s on %s: %w", method, to, ErrNoMethod)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}
