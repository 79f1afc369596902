package console_test

import (
	"testing"

	"go.uber.org/goleak"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them, with
// the api package's one exception (hashicorp/raft#498: an apply future
// queued when a test stops a node is never answered).
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
