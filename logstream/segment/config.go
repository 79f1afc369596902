package segment

import (
	"errors"
	"fmt"
	"log/slog"
)

// Config configures a Store. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started (before a batch that would take it past the size; a
	// single batch is never split, so a segment may exceed it by one
	// batch).
	SegmentBytes int64
	// IndexIntervalBytes is the spacing of the sparse index: one index
	// entry (8 bytes of memory) per this many bytes of segment, so a read
	// scans at most about this many bytes before its first entry.
	IndexIntervalBytes int64
	// MaxEntryBytes is the largest entry (id and data) a Store writes or
	// accepts on disk; a longer record length is corruption.
	MaxEntryBytes int
	// Cache, if not nil, keeps recently appended and read entries in
	// memory, bounded by its byte size. One Cache is shared by the Stores
	// of a node.
	Cache *Cache
	// Metrics, if not nil, is updated by the Store. One Metrics is shared
	// by the Stores of a node.
	Metrics *Metrics
	// Logger receives what recovery repaired (a cut tail, a removed
	// leftover file). Nil discards.
	Logger *slog.Logger

	// noSync skips every fsync of a Store; only this package's fuzz
	// tests set it, where fsyncs made each run a hundred times slower.
	noSync bool
}

// Defaults of Config, in one place.
const (
	DefaultSegmentBytes       = 64 << 20
	DefaultIndexIntervalBytes = 32 << 10
	DefaultMaxEntryBytes      = 64 << 20
)

// Bounds of Config. Positions inside a segment are stored in 32 bits, so a
// segment (at most SegmentBytes plus one batch) must stay below 2 GiB.
const (
	maxSegmentBytes = 1 << 30
	maxBatchBytes   = 1 << 30
	minIndexBytes   = 1 << 10
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       DefaultSegmentBytes,
		IndexIntervalBytes: DefaultIndexIntervalBytes,
		MaxEntryBytes:      DefaultMaxEntryBytes,
	}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid segment store configuration")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < headerSize+1 || c.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("segment size %d outside [%d, %d]: %w", c.SegmentBytes, headerSize+1, maxSegmentBytes, ErrInvalidConfig)
	case c.IndexIntervalBytes < minIndexBytes || c.IndexIntervalBytes > c.SegmentBytes:
		return fmt.Errorf("index interval %d outside [%d, segment size]: %w", c.IndexIntervalBytes, minIndexBytes, ErrInvalidConfig)
	case c.MaxEntryBytes < 1 || c.MaxEntryBytes > maxBatchBytes-frameHeaderSize-entryFixed:
		return fmt.Errorf("max entry size %d outside [1, %d]: %w", c.MaxEntryBytes, maxBatchBytes-frameHeaderSize-entryFixed, ErrInvalidConfig)
	}
	return nil
}
