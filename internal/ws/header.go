package ws

import "strings"

// headerTokens returns the elements of the comma-separated lists in
// values, the lines of one header field as http.Header holds them, each
// trimmed of spaces and tabs. Empty elements are skipped, as RFC 9110's
// list syntax allows ("a, ,b" is a and b).
func headerTokens(values []string) []string {
	var out []string
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			if t := strings.Trim(elem, " \t"); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// hasToken reports whether the lists in values hold token: exactly, or
// ignoring ASCII case if fold (header keywords such as "websocket" are
// case-insensitive; subprotocol names are not).
func hasToken(values []string, token string, fold bool) bool {
	for _, t := range headerTokens(values) {
		if t == token || fold && strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2):
// one or more visible ASCII characters other than separators.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
