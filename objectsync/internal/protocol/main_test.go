package protocol

import (
	"testing"

	"shoal/internal/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m)
}
