package clusterport

import (
	"sync"
	"time"
)

// logLimiter lets one log line through per interval: refusals are logged
// so that an operator sees why a node cannot join, but a process knocking
// in a loop must not flood the log. The metrics count every refusal.
type logLimiter struct {
	mu   sync.Mutex
	last time.Time
}

const refusalLogInterval = time.Second

// Allow reports whether a line may be logged now.
func (l *logLimiter) Allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) < refusalLogInterval {
		return false
	}
	l.last = now
	return true
}
