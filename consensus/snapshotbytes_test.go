package consensus_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// Commands far fewer than the snapshot threshold but larger in bytes than
// --snapshot-bytes trigger a snapshot, so that a restart replays little;
// with the bound off, the same commands take none.
func TestCluster_SnapshotsByBytes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes uint64
		want  bool
	}{{"by bytes", 64 << 10, true}, {"entries only", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := testcluster.New(t, 1, testcluster.WithModules("register"), testcluster.WithSnapshotThreshold(100_000),
				testcluster.WithConfig(func(_ int, cfg *agent.Config) { cfg.SnapshotBytes = tc.bytes }))
			n := c.Node(0)
			value := strings.Repeat("v", 16<<10)
			for range 8 { // 128 KiB of commands
				mustApply(t, n, value)
			}
			if tc.want {
				testcluster.Eventually(t, 10*time.Second, func() error {
					if n.Agent().Raft().LastSnapshotIndex() == 0 {
						return errors.New("no snapshot yet")
					}
					return nil
				})
				return
			}
			time.Sleep(time.Second) // four checks of the bound, had it been on
			if idx := n.Agent().Raft().LastSnapshotIndex(); idx != 0 {
				t.Fatalf("a snapshot at %d with the bound off", idx)
			}
		})
	}
}
