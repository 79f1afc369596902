package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"shoal/membership"
)

// antiEntropyPart measures what an idle shoal cluster spends on gossip
// with an empty keyspace and then with f.aeKeys keys on every node: the
// Merkle digest exchange must keep the cost flat. Then it measures the
// alternative the kv module avoids: the same keyspace exchanged whole by
// memberlist's push/pull, on as many in-process memberlist nodes.
func antiEntropyPart(ctx context.Context, out io.Writer, e *env, f kvFlags, shoalBin string) error {
	n := f.aeNodes
	fmt.Fprintf(out, "== anti-entropy cost, %d agents, idle with 0 and with %d keys (%d-byte values) ==\n", n, f.aeKeys, f.valueBytes)
	run := newRunID()
	c, err := startKVCluster(e, shoalBin, fmt.Sprintf("ae%d", n), n, shapeNonvoters)
	if err != nil {
		return err
	}
	defer stopShoal(c)
	if err := waitShoalKV(ctx, c, 3*time.Minute); err != nil {
		return err
	}
	e.markLogs()
	// At rest first: joins, syncs and promotions are over.
	if err := sleepCtx(ctx, 15*time.Second); err != nil {
		return err
	}
	empty, err := measureShoalIdle(ctx, c, f.aeWindow)
	if err != nil {
		return err
	}

	// The keys go to n1 alone, and the others get them by the full sync
	// of a restarted node: streaming 100,000 writes through gossip and
	// anti-entropy to 63 other processes on a small machine would measure
	// that machine's CPU, not the idle cost this part is about.
	others := c.nodes[1:]
	ps := make([]*proc, len(others))
	for i, node := range others {
		ps[i] = node.proc
	}
	stopAll(ps)
	fmt.Fprintf(out, "stopped n2..n%d; loading %d keys through %s ...\n", n, f.aeKeys, c.nodes[0].name)
	t0 := time.Now()
	if err := loadKeys(ctx, c.nodes[0], run, f.aeKeys, f.valueBytes); err != nil {
		return err
	}
	loaded := time.Since(t0)
	// In batches of 8: 63 full syncs of 100,000 keys at once would starve
	// a 2-core machine until failure detection flaps.
	t1 := time.Now()
	for i := 0; i < len(others); i += 8 {
		batch := others[i:min(i+8, len(others))]
		if err := c.restart(e, batch); err != nil {
			return err
		}
		up := &shoalCluster{nodes: c.nodes[:1+i+len(batch)]}
		if err := waitAllKeys(ctx, up, f.aeKeys, 10*time.Minute); err != nil {
			return err
		}
	}
	converged := time.Since(t1)
	if err := waitQuietQueues(ctx, c, 5*time.Minute); err != nil {
		return err
	}
	if err := sleepCtx(ctx, 15*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(out, "loaded in %.1fs (%.0f writes/s); restarted 8 at a time, the other %d nodes had every key %.1fs later (full sync)\n",
		loaded.Seconds(), float64(f.aeKeys)/loaded.Seconds(), n-1, converged.Seconds())
	full, err := measureShoalIdle(ctx, c, f.aeWindow)
	if err != nil {
		return err
	}
	stopShoal(c)

	state := pushPullState(run, f.aeKeys, f.valueBytes)
	fmt.Fprintf(out, "memberlist push/pull of the same keyspace (%.1f MiB of state per node) on %d in-process nodes ...\n",
		float64(len(state))/(1<<20), n)
	// memberlist stretches the push/pull interval in larger clusters; two
	// of them make the measurement hold about two exchanges per node.
	ppWindow := max(f.aeWindow, 2*pushPullInterval(membership.DefaultTiming().PushPullInterval, n))
	pp, err := measurePushPull(ctx, n, state, ppWindow)
	if err != nil {
		return err
	}

	tw := newTable(out, "system\tkeys\tgossip B/node/s\tof which kv anti-entropy\twindow\t")
	fmt.Fprintf(tw, "shoal kv (Merkle digests)\t0\t%.0f\t%.0f\t%.0fs\t\n", empty.rate, empty.aeRate, empty.window.Seconds())
	fmt.Fprintf(tw, "shoal kv (Merkle digests)\t%d\t%.0f\t%.0f\t%.0fs\t\n", f.aeKeys, full.rate, full.aeRate, full.window.Seconds())
	fmt.Fprintf(tw, "memberlist push/pull\t%d\t%.0f\t-\t%.0fs\t\n", f.aeKeys, pp.rate, pp.window.Seconds())
	_ = tw.Flush()
	fmt.Fprintf(out, "shoal idle cost at %d keys vs empty: %.2f× (target: flat); vs memberlist push/pull of the same state: %.4f×\n\n",
		f.aeKeys, full.rate/empty.rate, full.rate/pp.rate)
	return nil
}

// idleCost is the gossip a cluster sent over a window, per node and
// second: all of it, and the kv module's anti-entropy messages alone.
type idleCost struct {
	rate, aeRate float64
	window       time.Duration
}

func measureShoalIdle(ctx context.Context, c *shoalCluster, window time.Duration) (idleCost, error) {
	b0, err := shoalSent(ctx, c.nodes)
	if err != nil {
		return idleCost{}, err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return idleCost{}, err
	}
	b1, err := shoalSent(ctx, c.nodes)
	if err != nil {
		return idleCost{}, err
	}
	d := time.Since(t0)
	per := float64(len(c.nodes)) * d.Seconds()
	d1 := b1.sub(b0)
	return idleCost{rate: d1.total() / per, aeRate: d1.kvAE / per, window: d}, nil
}

// pushPullInterval is memberlist's push/pull interval for n nodes: the
// configured one, times one more for each doubling beyond 32 nodes
// (memberlist's pushPullScale).
func pushPullInterval(base time.Duration, n int) time.Duration {
	if n <= 32 {
		return base
	}
	mult := math.Ceil(math.Log2(float64(n))-math.Log2(32)) + 1
	return time.Duration(mult) * base
}

// idleKey and idleValue are the keyspace of the anti-entropy part:
// deterministic, so that the push/pull state holds the very same entries.
func idleKey(run string, i int) string { return fmt.Sprintf("ae/%s/%06d", run, i) }

func idleValue(i, size int) string {
	const hex = "0123456789abcdef"
	r := rand.New(rand.NewPCG(uint64(i)+1, 0x5eed))
	b := make([]byte, size)
	for j := range b {
		b[j] = hex[r.IntN(16)]
	}
	return string(b)
}

// loadKeys writes keys 0..n-1 through node with 32 concurrent clients.
func loadKeys(ctx context.Context, node *shoalNode, run string, n, valueBytes int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				var err error
				for try := 0; try < 5; try++ {
					wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err = node.client.KVPut(wctx, idleKey(run, i), idleValue(i, valueBytes))
					cancel()
					if err == nil {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("load key %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// waitAllKeys waits until every node reports at least keys live keys.
func waitAllKeys(ctx context.Context, c *shoalCluster, keys int, timeout time.Duration) error {
	return untilEveryNode(ctx, c, timeout, time.Second, "keys not everywhere", func(ctx context.Context, node *shoalNode) error {
		ks, err := shoalKVStatus(ctx, node)
		if err == nil && ks.Keys < keys {
			err = fmt.Errorf("%s has %d of %d keys", node.name, ks.Keys, keys)
		}
		return err
	})
}

// waitQuietQueues waits until no node has a broadcast queued: the writes'
// broadcasts are over, and what follows is the idle cost.
func waitQuietQueues(ctx context.Context, c *shoalCluster, timeout time.Duration) error {
	return untilEveryNode(ctx, c, timeout, time.Second, "broadcast queues not empty", func(ctx context.Context, node *shoalNode) error {
		snap, err := scrape(ctx, node.httpAddr)
		if err != nil {
			return err
		}
		if q := snap["shoal_membership_broadcast_queue_messages"]; q > 0 {
			return fmt.Errorf("%s has %.0f broadcasts queued", node.name, q)
		}
		return nil
	})
}

// pushPullState encodes the anti-entropy part's keyspace as a gossip
// store that exchanges its whole state would (Pokan, or a memberlist
// delegate's LocalState): per entry the key, the value and its version
// (8-byte time, 4-byte counter, writer name), lengths as uvarints.
func pushPullState(run string, n, valueBytes int) []byte {
	var buf []byte
	for i := range n {
		k, v := idleKey(run, i), idleValue(i, valueBytes)
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(1_790_000_000_000+i))
		buf = binary.BigEndian.AppendUint32(buf, 0)
		buf = binary.AppendUvarint(buf, 2)
		buf = append(buf, "n1"...)
	}
	return buf
}

// fullState is a channel handler whose push/pull state is the whole
// keyspace; what it receives it only counts (merging would cost CPU, not
// bytes).
type fullState struct {
	state  []byte
	merged atomic.Int64
}

func (s *fullState) NotifyMsg([]byte)                    {}
func (s *fullState) LocalState(bool) []byte              { return s.state }
func (s *fullState) MergeRemoteState(buf []byte, _ bool) { s.merged.Add(int64(len(buf))) }

// pushPullTag is the channel the baseline's state travels on.
const pushPullTag = 200

// measurePushPull starts n memberlist nodes in this process (see
// startSimCluster), each holding state as push/pull state, and measures
// the gossip they send over window once all have joined.
func measurePushPull(ctx context.Context, n int, state []byte, window time.Duration) (idleCost, error) {
	handler := &fullState{state: state}
	c, err := startSimCluster(ctx, "push/pull", n, func(m *membership.Membership) {
		m.Channel(pushPullTag).SetHandler(handler)
	})
	if err != nil {
		return idleCost{}, err
	}
	defer c.shutdown()
	cost, err := c.measure(ctx, window)
	return cost.idleCost, err
}

func countAlive(ms []membership.Member) int {
	n := 0
	for _, m := range ms {
		if m.Status == membership.StatusAlive {
			n++
		}
	}
	return n
}

// newTable returns a right-aligned table writer with its header written.
func newTable(out io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, header)
	return tw
}
