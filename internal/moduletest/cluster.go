package moduletest

import (
	"context"
	"fmt"
	"net"

	"shoal/modules"
)

// Cluster is a modules.Cluster made of functions the test sets. A nil
// function behaves as a single-node cluster of this node only: no leader
// known, no servers, calls and streams not delivered. The methods call the
// functions on the module's goroutines, possibly concurrently.
type Cluster struct {
	LeaderFunc     func() (modules.Server, bool)
	ServersFunc    func() []modules.Server
	CallFunc       func(ctx context.Context, node, method string, body []byte) ([]byte, error)
	OpenStreamFunc func(ctx context.Context, node, name string) (net.Conn, error)
}

// Leader implements modules.Cluster.
func (c *Cluster) Leader() (modules.Server, bool) {
	if c.LeaderFunc == nil {
		return modules.Server{}, false
	}
	return c.LeaderFunc()
}

// Servers implements modules.Cluster.
func (c *Cluster) Servers() []modules.Server {
	if c.ServersFunc == nil {
		return nil
	}
	return c.ServersFunc()
}

// Call implements modules.Cluster.
func (c *Cluster) Call(ctx context.Context, node, method string, body []byte) ([]byte, error) {
	if c.CallFunc == nil {
		return nil, fmt.Errorf("moduletest: %w: Cluster.CallFunc is not set", modules.ErrNotDelivered)
	}
	return c.CallFunc(ctx, node, method, body)
}

// CallLeader implements modules.Cluster: Call on Leader.
func (c *Cluster) CallLeader(ctx context.Context, method string, body []byte) ([]byte, error) {
	l, ok := c.Leader()
	if !ok {
		return nil, fmt.Errorf("moduletest: %w: no leader", modules.ErrNotDelivered)
	}
	return c.Call(ctx, l.Name, method, body)
}

// OpenStream implements modules.Cluster.
func (c *Cluster) OpenStream(ctx context.Context, node, name string) (net.Conn, error) {
	if c.OpenStreamFunc == nil {
		return nil, fmt.Errorf("moduletest: %w: Cluster.OpenStreamFunc is not set", modules.ErrNotDelivered)
	}
	return c.OpenStreamFunc(ctx, node, name)
}

var _ modules.Cluster = (*Cluster)(nil)
