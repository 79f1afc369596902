package modules

// MaxNameLen is the length in bytes of the longest name ValidName accepts.
const MaxNameLen = 128

// ValidName reports whether name may name an object a module keeps under a
// name of its clients' choosing (a log, a semaphore, a lock): 1 to
// MaxNameLen bytes, each an ASCII letter or digit, '.', '_' or '-'. Such a
// name needs no escaping in a URL path segment, a log line or a metric
// label value. Modules check names where they enter (the HTTP layer) and
// again where they are decoded (commands and snapshots), with this one
// function, so that both agree. It is safe for concurrent use.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
