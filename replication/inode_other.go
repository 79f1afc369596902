//go:build !unix

package replication

import "io/fs"

// inode is 0 where the platform does not expose it: the hash cache then
// keys on size and mtime only.
func inode(fi fs.FileInfo) uint64 { return 0 }
