package segment

import "sync/atomic"

// Metrics are the counters and gauges of a node's Stores, updated
// atomically. The log module registers them on the node's own Prometheus
// registry (GaugeFunc and CounterFunc reading these fields); this package
// knows no registry. One Metrics is shared by every Store of a node; its
// zero value is ready.
type Metrics struct {
	// DiskBytes is the size of the open Stores' segment files (gauge).
	DiskBytes atomic.Int64
	// Segments is the number of the open Stores' segment files (gauge).
	Segments atomic.Int64
	// DiskReads counts entries served from segment files (through the page
	// cache or the disk).
	DiskReads atomic.Uint64
	// CacheHits counts entries served from the Cache.
	CacheHits atomic.Uint64
	// Fsyncs counts fsyncs of segment files and directories.
	Fsyncs atomic.Uint64
	// TornTails counts tails recovery cut.
	TornTails atomic.Uint64
}

// The methods below accept a nil *Metrics, so a Store without metrics
// needs no checks.

func (m *Metrics) addDisk(bytes, segments int64) {
	if m != nil {
		m.DiskBytes.Add(bytes)
		m.Segments.Add(segments)
	}
}

func (m *Metrics) diskReads(n int) {
	if m != nil && n > 0 {
		m.DiskReads.Add(uint64(n))
	}
}

func (m *Metrics) cacheHits(n int) {
	if m != nil && n > 0 {
		m.CacheHits.Add(uint64(n))
	}
}

func (m *Metrics) fsync() {
	if m != nil {
		m.Fsyncs.Add(1)
	}
}

func (m *Metrics) tornTail() {
	if m != nil {
		m.TornTails.Add(1)
	}
}
