package replication

import "testing"

// TestSharedData_Classes: content is held in a buffer of its pool class
// (powers of two from 64 KiB), small content outside the pool, and a
// buffer is pooled again only when its last holder releases it.
func TestSharedData_Classes(t *testing.T) {
	for _, tc := range []struct{ n, wantCap int }{
		{100, 100}, {32 << 10, 32 << 10}, {32<<10 + 1, 64 << 10}, {64 << 10, 64 << 10},
		{1 << 20, 1 << 20}, {1<<20 + 1, 2 << 20}, {maxData, maxData},
	} {
		d := getShared(tc.n)
		if len(d.buf) != tc.n || cap(d.buf) != tc.wantCap {
			t.Fatalf("getShared(%d): len %d cap %d, want cap %d", tc.n, len(d.buf), cap(d.buf), tc.wantCap)
		}
		d.release()
	}

	d := getShared(1 << 20)
	d.retain() // a queue
	d.release()
	if d.refs.Load() != 1 {
		t.Fatalf("after one of two holders released: %d holders", d.refs.Load())
	}
	d.release()
	if d.refs.Load() != 0 {
		t.Fatalf("after the last release: %d holders", d.refs.Load())
	}
	var none *sharedData
	none.retain() // content not from the pool: a no-op
	none.release()
}
