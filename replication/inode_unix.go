//go:build unix

package replication

import (
	"io/fs"
	"syscall"
)

// inode returns fi's inode number, so that a file replaced by a rename
// within the same mtime tick is not mistaken for its predecessor.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
