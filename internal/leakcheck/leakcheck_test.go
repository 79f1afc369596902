package leakcheck

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestFind_WaitsForAGoroutineThatEndsOnItsOwn(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second) // longer than goleak's own retries
	}()
	if err := Find(5*time.Second, ignore); err != nil {
		t.Fatalf("a goroutine that ends after 1s was reported: %v", err)
	}
	<-done
}

func TestFind_ReportsAGoroutineThatNeverEnds(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop
	}()
	err := Find(300*time.Millisecond, ignore)
	close(stop)
	<-done
	if err == nil {
		t.Fatal("a blocked goroutine was not reported")
	}
}
