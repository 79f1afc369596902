// Package all is the one list of the modules shoal ships: importing it
// links them into a binary or a test, and each registers itself with the
// module registry in its init. The shoal command imports it, and so do
// the tests that need a node as the binary runs it (the console, the
// documented metrics and examples).
package all

import (
	_ "shoal/acl"
	_ "shoal/kv"
	_ "shoal/locks"
	_ "shoal/logstream"
	_ "shoal/objectsync"
	_ "shoal/replication"
)
