// Package metricsdoc holds only tests: it checks that every metric the
// documentation names is on a freshly started node's /metrics, before any
// traffic, so dashboards and alerts (rate(), absent()) see a 0 from the
// start. It imports every module, which no module package can.
package metricsdoc

import (
	"testing"

	"go.uber.org/goleak"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them, with
// the same exception as the module packages (hashicorp/raft#498, see
// kv/main_test.go).
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
