package replication

import (
	"testing"

	"go.uber.org/goleak"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them (raft's
// own apply-future leak on killed nodes excepted, as in the locks module:
// hashicorp/raft#498).
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
