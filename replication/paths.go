package replication

import (
	"strings"
	"unicode/utf8"
)

// maxPathLen bounds a replicated path in bytes.
const maxPathLen = 1024

// reservedDir is the module's own directory inside the replicated root
// (temporary files of atomic replaces). No client path may name it, and
// scans skip it.
const reservedDir = ".shoal-replication"

// validPath reports whether p may name a replicated file: 1 to maxPathLen
// bytes of UTF-8, relative, '/'-separated, every component non-empty and
// neither "." nor "..", no NUL or other control character, no backslash,
// and not under reservedDir. It is the one check used where a path enters
// (HTTP), where it is decoded (stream frames, peer calls) and in scans.
// Symlinks are handled where files are opened: every operation goes through
// an os.Root, and only regular files are served or replicated.
func validPath(p string) bool {
	if len(p) == 0 || len(p) > maxPathLen || !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return false
		}
	}
	first := true
	for comp := range strings.SplitSeq(p, "/") {
		switch comp {
		case "", ".", "..":
			return false
		}
		if first && comp == reservedDir {
			return false
		}
		first = false
	}
	return true
}

// validPrefix reports whether p may be a listing prefix: empty, or a path
// prefix without control characters or ".." components.
func validPrefix(p string) bool {
	if p == "" {
		return true
	}
	return validPath(strings.TrimSuffix(p, "/")) || (len(p) <= maxPathLen && validPath(p+"x"))
}
