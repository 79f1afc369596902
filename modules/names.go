package modules

import "unicode/utf8"

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

// ValidAPIName is ValidName for a name a client gives the HTTP API: it
// also refuses "." and "..", path segments that URL clients and file
// systems resolve instead of passing on. Decoders keep ValidName, so state
// written before this rule stays readable.
func ValidAPIName(name string) bool {
	return name != "." && name != ".." && ValidName(name)
}

// maxEcho is how much of a client's input an error message quotes.
const maxEcho = 64

// Echo returns s as an error message may quote it: at most 64 bytes (cut
// on a rune boundary, marked with "..."), so a 100 KB name does not come
// back as a 100 KB error.
func Echo(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
