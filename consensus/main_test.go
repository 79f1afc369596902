package consensus

import (
	"testing"

	"go.uber.org/goleak"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them.
//
// One exception is raft's own (hashicorp/raft#498): with BatchApplyCh, an
// apply future still queued in raft's buffered apply channel when a test
// kills the node is never answered, so the in-process request waiting on
// it never returns. A real process exits. Without BatchApplyCh, publish
// throughput drops by a quarter (bench/run log), so the option stays.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
