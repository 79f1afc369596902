package kv

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// An ETag is a version, quoted: "TIME.COUNTER@NODE", the node name
// percent-escaped (url.PathEscape), so that any name makes a valid
// entity tag. It is strong: one version is one value.
func etag(v Version) string {
	return `"` + strconv.FormatInt(v.Time, 10) + "." + strconv.FormatUint(uint64(v.Counter), 10) + "@" + url.PathEscape(v.Node) + `"`
}

// parseETag reads an entity tag made by etag. A weak tag (W/"...") never
// matches in If-Match (RFC 9110 13.1.1 compares strongly), so it is
// refused rather than silently failing.
func parseETag(s string) (Version, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return Version{}, false
	}
	ts, rest, ok := strings.Cut(s[1:len(s)-1], ".")
	if !ok {
		return Version{}, false
	}
	cs, node, ok := strings.Cut(rest, "@")
	if !ok {
		return Version{}, false
	}
	t, err1 := strconv.ParseInt(ts, 10, 64)
	c, err2 := strconv.ParseUint(cs, 10, 32)
	n, err3 := url.PathUnescape(node)
	if err1 != nil || err2 != nil || err3 != nil || t < 0 || t > maxTime || !validNode(n) {
		return Version{}, false
	}
	return Version{Time: t, Counter: uint32(c), Node: n}, true
}

// precondition is the If-Match or If-None-Match of a write, checked on the
// node that takes it against its own copy of the key, at the moment of the
// write. It is not a compare-and-set across the cluster: another node may
// take a write of the same key at the same time, and the newer version
// wins there as everywhere (see docs/kv.md).
type precondition struct {
	// match: the value's version must be one of these (If-Match); with
	// anyMatch, any live value will do (If-Match: *).
	match    []Version
	anyMatch bool
	// noneMatch: the value's version must be none of these
	// (If-None-Match); with noneAny, there must be no live value
	// (If-None-Match: *, create only).
	noneMatch []Version
	noneAny   bool
}

// parsePrecondition reads If-Match and If-None-Match; nil if neither is
// set. A malformed header is ErrInvalidPrecondition.
func parsePrecondition(h http.Header) (*precondition, error) {
	im, inm := h.Values("If-Match"), h.Values("If-None-Match")
	if len(im) == 0 && len(inm) == 0 {
		return nil, nil
	}
	p := &precondition{}
	var err error
	if len(im) > 0 {
		if p.match, p.anyMatch, err = parseETagList("If-Match", im); err != nil {
			return nil, err
		}
	}
	if len(inm) > 0 {
		if p.noneMatch, p.noneAny, err = parseETagList("If-None-Match", inm); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseETagList reads the values of a conditional header: "*" or a
// comma-separated list of entity tags.
func parseETagList(header string, values []string) ([]Version, bool, error) {
	var out []Version
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			switch {
			case s == "":
			case s == "*":
				if len(values) != 1 || strings.TrimSpace(v) != "*" {
					return nil, false, ErrInvalidPrecondition.WithMessage("%s: * must be alone", header).WithDetail("header", header)
				}
				return nil, true, nil
			default:
				ver, ok := parseETag(s)
				if !ok {
					return nil, false, ErrInvalidPrecondition.WithMessage(
						"%s: %q is not an entity tag of this store (a quoted \"TIME.COUNTER@NODE\", as the ETag header of GET and PUT gives)", header, s).WithDetail("header", header)
				}
				out = append(out, ver)
			}
		}
	}
	if len(out) == 0 {
		return nil, false, ErrInvalidPrecondition.WithMessage("%s is empty", header).WithDetail("header", header)
	}
	return out, false, nil
}

// check returns ErrPreconditionFailed unless the key's live value on this
// node (cur, if live) satisfies p. An expired value is not live.
func (p *precondition) check(key string, cur Version, live bool) error {
	fail := func(format string, args ...any) error {
		err := ErrPreconditionFailed.WithMessage(format, args...)
		if live {
			err = err.WithDetail("current_version", cur).WithDetail("current_etag", etag(cur))
		}
		return err
	}
	switch {
	case p.anyMatch && !live:
		return fail("If-Match: * but key %q has no value on this node", key)
	case len(p.match) > 0 && !live:
		return fail("If-Match: key %q has no value on this node", key)
	case len(p.match) > 0 && !containsVersion(p.match, cur):
		return fail("If-Match: key %q is at version %s on this node", key, etag(cur))
	case p.noneAny && live:
		return fail("If-None-Match: * but key %q has a value on this node", key)
	case live && containsVersion(p.noneMatch, cur):
		return fail("If-None-Match: key %q is at version %s on this node", key, etag(cur))
	}
	return nil
}

func containsVersion(vs []Version, v Version) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}
