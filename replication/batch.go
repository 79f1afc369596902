package replication

import (
	"fmt"
	"os"
)

// A follower commits whole files (live replaces, and files fetched during
// catch-up) in batches. Each file is staged in tmpDir as it arrives, with
// its writeback started at once; the batch ends before the follower
// acknowledges (or when it is full), and then every staged file is
// fsynced and only then renamed into place. So a file's new content is on
// disk before its name points to it, as with one fsync per file, but the
// disk writes the batch while the stream goes on, and a batch of files
// costs about one journal commit instead of one each: fsyncing each file
// before the next one is read made the follower wait for the disk once
// per file.
//
// Actions on a path with a staged file (an append after a replace, a
// second replace, a delete) end the batch first, so each path sees its
// actions in stream order.

// maxBatchFiles bounds the staged files a batch holds open; maxBatchBytes
// bounds their bytes.
const maxBatchFiles = 128

// stagedFile is a file staged for a batch, still open for its fsync.
type stagedFile struct {
	f    *os.File
	st   staged
	path string
}

// commitBatch is a follower's staged files waiting for their commit.
type commitBatch struct {
	s     *store
	files []stagedFile
	paths map[string]bool
	bytes int64
}

func newCommitBatch(s *store) *commitBatch {
	return &commitBatch{s: s, paths: map[string]bool{}}
}

// add takes a staged file, written and open, to be renamed to p at the
// batch's commit.
func (b *commitBatch) add(f *os.File, st staged, p string) {
	startWriteback(f)
	b.files = append(b.files, stagedFile{f: f, st: st, path: p})
	b.paths[p] = true
	b.bytes += st.size
}

// has reports whether p has a staged file in the batch.
func (b *commitBatch) has(p string) bool { return b.paths[p] }

// full reports whether the batch should be committed now.
func (b *commitBatch) full() bool {
	return len(b.files) >= maxBatchFiles || b.bytes >= maxBatchBytes
}

// commit fsyncs (if configured) every staged file, then renames each into
// place in the order they came. On an error the files not renamed yet are
// discarded: the stream fails and catch-up fetches them again.
func (b *commitBatch) commit() error {
	if len(b.files) == 0 {
		return nil
	}
	files := b.files
	b.reset()
	var err error
	for _, sf := range files {
		if err == nil && b.s.fsync {
			if e := sf.f.Sync(); e != nil {
				err = fmt.Errorf("fsync staged file for %s: %w", sf.path, e)
			}
		}
		if e := sf.f.Close(); e != nil && err == nil {
			err = fmt.Errorf("close staged file for %s: %w", sf.path, e)
		}
	}
	if err != nil {
		for _, sf := range files {
			b.s.discard(sf.st)
		}
		return err
	}
	for i, sf := range files {
		if _, err := b.s.commit(sf.st, sf.path); err != nil {
			for _, rest := range files[i:] {
				b.s.discard(rest.st)
			}
			return err
		}
	}
	return nil
}

// discard drops every staged file.
func (b *commitBatch) discard() {
	for _, sf := range b.files {
		_ = sf.f.Close()
		b.s.discard(sf.st)
	}
	b.reset()
}

func (b *commitBatch) reset() {
	b.files = nil
	clear(b.paths)
	b.bytes = 0
}
