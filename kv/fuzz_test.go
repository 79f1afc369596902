package kv

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"shoal/internal/httpjson"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain
// go test. Regenerate them with: go test -run TestFuzzSeeds -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range messageSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedMessage) {
				t.Fatalf("error %v does not wrap ErrMalformedMessage", err)
			}
			return
		}
		for _, e := range m.Entries {
			if m.Type != msgNotice && !e.valid() {
				t.Fatalf("decoded an invalid entry %+v", e)
			}
			if !validKey(e.Key) {
				t.Fatalf("decoded an invalid key %q", e.Key)
			}
		}
		again, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatalf("a decoded message does not re-encode: %v", err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: got %+v, want %+v", again, m)
		}
	})
}

// FuzzDigest feeds decoded digests to the tree comparison and the
// descent, which index arrays by what the peer sent.
func FuzzDigest(f *testing.F) {
	for _, seed := range messageSeeds() {
		if msgType(firstByte(seed)) == msgDigest {
			f.Add(seed)
		}
	}
	tr := newTree()
	for i := range 100 {
		k := fmt.Sprint(i)
		tr.toggle(leafOf(k), entryHash(k, ver(int64(i), 0, "n"), false))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil || m.Type != msgDigest {
			return
		}
		level := int(m.Level)
		var diff []int
		for _, n := range m.Nodes {
			if tr.hash(level, int(n.Index)) != n.Hash {
				diff = append(diff, int(n.Index))
			}
		}
		if level < treeDepth {
			for _, c := range children(sample(diff, maxL2Expand)) {
				if c >= levelSize(level+1) {
					t.Fatalf("child %d out of level %d", c, level+1)
				}
				_ = tr.hash(level+1, c)
			}
		} else {
			for _, l := range diff {
				if l >= numLeaves {
					t.Fatalf("leaf %d out of range", l)
				}
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	for _, seed := range recordSeeds() {
		f.Add(seed.key, seed.data)
	}
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		e, err := decodeRecord([]byte(key), data)
		if err != nil {
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("error %v does not wrap ErrMalformedRecord", err)
			}
			return
		}
		if !e.valid() || e.Key != key {
			t.Fatalf("decoded an invalid entry %+v", e)
		}
		again, err := decodeRecord([]byte(key), encodeRecord(e))
		if err != nil || again != e {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, e)
		}
		v, deleted, expires, err := decodeRecordVersion(data)
		if err != nil || v != e.Version || deleted != e.Deleted || expires != e.Expires {
			t.Fatalf("the version reader disagrees: %+v %v %d %v", v, deleted, expires, err)
		}
	})
}

// FuzzRequest covers what a request brings: the key path, the query of a
// list or watch, and the body of a PUT.
func FuzzRequest(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add(s.path, s.escaped, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, path string, escaped bool, query string, body []byte) {
		checkHTTPError := func(err error, status int) {
			t.Helper()
			var e *httpjson.Error
			if !errors.As(err, &e) || e.Status != status {
				t.Fatalf("error %v is not a %d *httpjson.Error", err, status)
			}
		}
		if key, err := keyFromPath(path, escaped); err != nil {
			checkHTTPError(err, 400)
		} else if !validKey(key) {
			t.Fatalf("accepted invalid key %q", key)
		}
		if q, err := url.ParseQuery(query); err == nil {
			if lq, err := parseListQuery(q); err != nil {
				checkHTTPError(err, 400)
			} else if !validPrefix(lq.prefix) || !validPrefix(lq.after) || lq.limit < 1 || lq.limit > maxListLimit {
				t.Fatalf("accepted bad query %+v", lq)
			}
			if _, err := rawParam(q); err != nil {
				checkHTTPError(err, 400)
			}
			if d, err := ttlParam(q); err != nil {
				checkHTTPError(err, 400)
			} else if q.Has("ttl") && (d < MinTTL || d > MaxTTL) {
				t.Fatalf("accepted ttl %s", d)
			}
			for _, accepted := range [][]string{listParams, getParams, putParams, deleteParams} {
				if err := checkParams(q, accepted); err != nil {
					checkHTTPError(err, 400)
				}
			}
		}
		const limit = 64
		v, err := readValue(strings.NewReader(string(body)), limit)
		switch {
		case len(body) > limit:
			checkHTTPError(err, 413)
		case !utf8.Valid(body):
			checkHTTPError(err, 400)
		case err != nil || v != string(body):
			t.Fatalf("valid body %q: got %q, %v", body, v, err)
		}
	})
}

// FuzzPrecondition covers If-Match and If-None-Match, and the entity
// tags in them: what parses must be an ETag this store makes.
func FuzzPrecondition(f *testing.F) {
	for _, s := range preconditionSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, ok := parseETag(s); ok {
			if again, ok := parseETag(etag(v)); !ok || again != v {
				t.Fatalf("%q parses as %+v, whose ETag does not parse back", s, v)
			}
		}
		for _, h := range []string{"If-Match", "If-None-Match"} {
			p, err := parsePrecondition(http.Header{h: {s}})
			if err != nil {
				var e *httpjson.Error
				if !errors.As(err, &e) || e.Status != 400 {
					t.Fatalf("error %v is not a 400", err)
				}
				continue
			}
			if p == nil {
				t.Fatalf("%s: %q parsed as no precondition", h, s)
			}
		}
	})
}

func preconditionSeeds() []string {
	return []string{`"1733412345678.0@n1"`, `*`, `"1.2@n%22x", "3.4@y"`, `W/"1.0@n"`, `"1.0@%zz"`, ``, `, ,`, `*, "1.0@n"`, `"99999999999999999999.0@n"`}
}

func FuzzHandlerSpec(f *testing.F) {
	for _, s := range []string{"new_key,key_changed:prefix=config/=/path/to/script", "*=/x", "synced:prefix==/x",
		"new_key=", "x", "key_removed:prefix=a=https://h/x", "http://h/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (HandlerSpec, error){ParseHandlerSpec, ParseWebhookSpec} {
			spec, err := parse(s)
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
				}
				continue
			}
			if spec.Target == "" || len(spec.Events) == 0 || !validPrefix(spec.Prefix) {
				t.Fatalf("accepted %q as %+v", s, spec)
			}
		}
	})
}

func messageSeeds() [][]byte {
	var out [][]byte
	for _, m := range sampleMessages() {
		out = append(out, encodeMessage(m))
	}
	valid := encodeMessage(sampleMessages()[0])
	ttl := sampleEntry("ttl", "v")
	ttl.Expires = ttl.Version.Time + 1000
	ttlMsg := encodeMessage(message{Type: msgEntry, From: "n", Entries: []entry{ttl}})
	return append(out,
		nil,
		[]byte{byte(msgEntry)},
		valid[:len(valid)/2],
		append(append([]byte{}, valid...), 0),
		[]byte{byte(msgDigest), 1, 'n', 1, 3, 1, 0xff, 0x1f, 1, 2, 3, 4, 5, 6, 7, 8},
		[]byte{byte(msgSummary), 1, 'n', 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		[]byte{99, 1, 'n'},
		ttlMsg,
		// The expiry flag with a zero expiry, and with an expiry before
		// the version: both malformed.
		setExpiry(ttlMsg, 0),
		setExpiry(ttlMsg, 1),
	)
}

type recordSeed struct {
	key  string
	data []byte
}

// setExpiry returns b, an encoding that ends with an entry with an
// expiry and a one-byte value "v", with the expiry replaced by expires.
func setExpiry(b []byte, expires int64) []byte {
	// The tail is [expiry varint][1]['v']; find the varint's start by
	// re-encoding the expiry the entry carries.
	m, err := decodeMessage(b)
	var old int64
	if err == nil {
		old = m.Entries[0].Expires
	} else if e, err := decodeRecord([]byte("k"), b); err == nil {
		old = e.Expires
	}
	n := len(binary.AppendVarint(nil, old))
	head := b[:len(b)-2-n]
	out := binary.AppendVarint(append([]byte{}, head...), expires)
	return append(out, b[len(b)-2:]...)
}

func recordSeeds() []recordSeed {
	rec := encodeRecord(sampleEntry("a/b", "value"))
	tomb := encodeRecord(entry{Key: "t", Version: ver(5, 1, "n"), Deleted: true})
	ttl := sampleEntry("k", "v")
	ttl.Expires = ttl.Version.Time + 1000
	ttlRec := encodeRecord(ttl)
	return []recordSeed{
		{"a/b", rec},
		{"t", tomb},
		{"", rec},
		{"a/b", rec[:len(rec)-2]},
		{"a/b", append(append([]byte{}, rec...), 0)},
		{"a/b", append([]byte{9}, rec[1:]...)},
		{"t", []byte{recordFormat, 2, 0, 1, 'n', 1, 1, 'x'}},
		{"k", nil},
		{"k", ttlRec},
		{"k", setExpiry(ttlRec, 0)},
		{"k", setExpiry(ttlRec, 1)},
		{"t", []byte{recordFormat, 2, 0, 1, 'n', flagDeleted | flagExpires, 0x80, 0x01, 0}}, // a tombstone with an expiry
	}
}

type requestSeed struct {
	path    string
	escaped bool
	query   string
	body    []byte
}

func requestSeeds() []requestSeed {
	return []requestSeed{
		{"config/a", false, "prefix=config/&limit=10&after=config/a", []byte("value")},
		{"a%2Fb", true, "prefix=a&watch=true", []byte("é\n")},
		{"a%zz", true, "limit=0", []byte("\xff")},
		{"", false, "prefix=%FF", nil},
		{"a\x01", false, "watch=maybe&raw=x", []byte(strings.Repeat("x", 65))},
		{strings.Repeat("k", MaxKeyLen+1), false, "limit=1001&after=%00", []byte("ok")},
		{"ünï/€", false, "raw&watch=false&limit=1000", []byte("")},
		{"t", false, "ttl=30s&cas=1&last_event_id=x-1&token=t", []byte("v")},
		{"t", false, "ttl=721h&ttl=1s", nil},
	}
}

// TestFuzzSeeds writes the seed corpora when run with -update-fuzz-seeds.
func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	write := func(fuzz string, i int, values ...string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digests := 0
	for i, seed := range messageSeeds() {
		write("FuzzDecodeMessage", i, fmt.Sprintf("[]byte(%q)", seed))
		if msgType(firstByte(seed)) == msgDigest {
			write("FuzzDigest", digests, fmt.Sprintf("[]byte(%q)", seed))
			digests++
		}
	}
	for i, seed := range recordSeeds() {
		write("FuzzDecodeRecord", i, fmt.Sprintf("string(%q)", seed.key), fmt.Sprintf("[]byte(%q)", seed.data))
	}
	for i, s := range requestSeeds() {
		write("FuzzRequest", i, fmt.Sprintf("string(%q)", s.path), fmt.Sprintf("bool(%v)", s.escaped),
			fmt.Sprintf("string(%q)", s.query), fmt.Sprintf("[]byte(%q)", s.body))
	}
	for i, s := range []string{"new_key,key_changed:prefix=config/=/path/to/script", "*=/x", "synced:prefix==/x",
		"new_key=", "key_removed:prefix=a=https://h/x", "http://h/x"} {
		write("FuzzHandlerSpec", i, fmt.Sprintf("string(%q)", s))
	}
	for i, s := range preconditionSeeds() {
		write("FuzzPrecondition", i, fmt.Sprintf("string(%q)", s))
	}
}
