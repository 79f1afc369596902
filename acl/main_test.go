package acl

import (
	"testing"

	"go.uber.org/goleak"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them, with
// the same exception as the other module packages (hashicorp/raft#498,
// see locks/main_test.go).
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
