package doctest

import (
	"testing"

	"go.uber.org/goleak"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them.
//
// One exception is raft's own (hashicorp/raft#498), as in the module
// packages: an apply future still queued in raft's buffered apply channel
// when a node stops is never answered.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
