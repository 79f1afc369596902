package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// op performs one operation on behalf of client worker (0 ≤ worker <
// clients). Calls for one worker are sequential; calls for different
// workers run concurrently, so an op must only touch per-worker state.
type op func(ctx context.Context, worker int) error

// load is a closed-loop load: clients goroutines, each issuing its next
// operation as soon as the previous one returned.
type load struct {
	clients   int
	opTimeout time.Duration
}

// sample is what one timed phase measured.
type sample struct {
	ok      int
	errors  int
	elapsed time.Duration   // from the start until the last operation returned
	lat     []time.Duration // of successful operations, unsorted
	perSec  []int           // successful operations completed in each second
	errMsgs map[string]int  // a few distinct error messages and their counts
}

// errorPause is how long a client waits after a failed operation.
const errorPause = 10 * time.Millisecond

// maxErrMsgs bounds how many distinct error messages a sample keeps.
const maxErrMsgs = 5

// run drives fn for d: no operation starts after d, and the phase returns
// once the started ones returned (each is bounded by opTimeout) or ctx is
// done. Only successful operations count towards latency and throughput.
func (l load) run(ctx context.Context, d time.Duration, fn op) sample {
	start := time.Now()
	deadline := start.Add(d)
	per := make([]sample, l.clients)
	var wg sync.WaitGroup
	for w := range l.clients {
		wg.Go(func() {
			s := &per[w]
			s.lat = make([]time.Duration, 0, 4096)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				octx, cancel := context.WithTimeout(ctx, l.opTimeout)
				t0 := time.Now()
				err := fn(octx, w)
				t1 := time.Now()
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: not the system's error
					}
					s.errors++
					s.noteErr(err)
					// Do not spin on a failing system; the deadline
					// still bounds the loop.
					select {
					case <-ctx.Done():
						return
					case <-time.After(errorPause):
					}
					continue
				}
				s.ok++
				s.lat = append(s.lat, t1.Sub(t0))
				sec := int(t1.Sub(start) / time.Second)
				for len(s.perSec) <= sec {
					s.perSec = append(s.perSec, 0)
				}
				s.perSec[sec]++
			}
		})
	}
	wg.Wait()
	total := sample{elapsed: time.Since(start)}
	for i := range per {
		total.merge(&per[i])
		for sec, n := range per[i].perSec {
			for len(total.perSec) <= sec {
				total.perSec = append(total.perSec, 0)
			}
			total.perSec[sec] += n
		}
	}
	return total
}

func (s *sample) noteErr(err error) {
	if s.errMsgs == nil {
		s.errMsgs = map[string]int{}
	}
	msg := err.Error()
	if _, ok := s.errMsgs[msg]; ok || len(s.errMsgs) < maxErrMsgs {
		s.errMsgs[msg]++
	}
}

// merge adds o's counts, latencies and error messages to s; not its
// elapsed time or per-second counts, whose meaning depends on whether o
// ran at the same time as s (workers of a phase) or after it (rounds).
func (s *sample) merge(o *sample) {
	s.ok += o.ok
	s.errors += o.errors
	s.lat = append(s.lat, o.lat...)
	for m, n := range o.errMsgs {
		if s.errMsgs == nil {
			s.errMsgs = map[string]int{}
		}
		if _, ok := s.errMsgs[m]; ok || len(s.errMsgs) < maxErrMsgs {
			s.errMsgs[m] += n
		}
	}
}

// stats is the summary of a sample.
type stats struct {
	ok, errors         int
	opsPerSec          float64
	mean               time.Duration
	p50, p90, p99, max time.Duration
	p999               time.Duration
}

// summarize sorts s.lat and computes its summary; elapsed is the measured
// time the ops/s are computed over.
func (s *sample) summarize(elapsed time.Duration) stats {
	slices.Sort(s.lat)
	st := stats{ok: s.ok, errors: s.errors}
	if elapsed > 0 {
		st.opsPerSec = float64(s.ok) / elapsed.Seconds()
	}
	if len(s.lat) == 0 {
		return st
	}
	var sum time.Duration
	for _, d := range s.lat {
		sum += d
	}
	st.mean = sum / time.Duration(len(s.lat))
	st.p50 = percentile(s.lat, 0.50)
	st.p90 = percentile(s.lat, 0.90)
	st.p99 = percentile(s.lat, 0.99)
	st.p999 = percentile(s.lat, 0.999)
	st.max = s.lat[len(s.lat)-1]
	return st
}

// percentile returns the nearest-rank q-quantile of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// wholeSeconds returns the slowest and fastest complete seconds of a
// phase's per-second completions (the last, partial second is left out).
func wholeSeconds(perSec []int) (lo, hi int) {
	if len(perSec) > 1 {
		perSec = perSec[:len(perSec)-1]
	}
	if len(perSec) == 0 {
		return 0, 0
	}
	return slices.Min(perSec), slices.Max(perSec)
}

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
