package segment

import (
	"bytes"
	"testing"
)

// BenchmarkAppend appends batches of 100 entries of 256 bytes, the shape
// of bench/run log; bytes/s is the store's write throughput without fsync.
func BenchmarkAppend(b *testing.B) {
	s := openStore(b, b.TempDir(), DefaultConfig())
	defer func() { _ = s.Close() }()
	batch := make([]Entry, 100)
	for i := range batch {
		batch[i] = Entry{ID: "order-0000001", Data: bytes.Repeat([]byte{'x'}, 256), Time: 1}
	}
	b.SetBytes(100 * 256)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(uint64(i+1), batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads pages of 100 entries at random offsets of a store of
// 100,000 entries, through the page cache and without the entry cache.
func BenchmarkRead(b *testing.B) {
	s := openStore(b, b.TempDir(), DefaultConfig())
	defer func() { _ = s.Close() }()
	batch := make([]Entry, 1000)
	for i := range batch {
		batch[i] = Entry{Data: bytes.Repeat([]byte{'x'}, 256)}
	}
	for raft := uint64(1); raft <= 100; raft++ {
		if _, err := s.Append(raft, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(100 * 256)
	b.ResetTimer()
	for i := range b.N {
		from := uint64(i*7919%99_900) + 1
		es, err := s.Read(from, 100, 0)
		if err != nil || len(es) != 100 {
			b.Fatalf("read from %d: %d entries, %v", from, len(es), err)
		}
	}
}

// BenchmarkOpenTail opens a store whose active segment holds about 60 MiB
// (entries of 256 bytes): the restart cost of one large log, a scan of
// its tail through the page cache.
func BenchmarkOpenTail(b *testing.B) {
	dir := b.TempDir()
	s := openStore(b, dir, DefaultConfig())
	batch := make([]Entry, 1000)
	for i := range batch {
		batch[i] = Entry{ID: "order-0000001", Data: bytes.Repeat([]byte{'x'}, 256)}
	}
	for raft := uint64(1); s.Stats().DiskBytes < 60<<20; raft++ {
		if _, err := s.Append(raft, batch); err != nil {
			b.Fatal(err)
		}
	}
	size := s.Stats().DiskBytes
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		s := openStore(b, dir, DefaultConfig())
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
