package acl

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ (beside the seeds
// the targets add themselves) and run in plain go test. Regenerate them
// with: go test -run TestFuzzSeeds -update-fuzz-seeds ./acl/
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// scenarioACL returns an ACL holding the state scenario builds.
func scenarioACL() *ACL {
	a := new(ACL)
	for i, c := range scenario() {
		_, _ = a.ApplyCommand(modules.Command{Index: uint64(i + 1), Time: testEpoch.Add(time.Duration(i) * time.Minute), Op: c.op, Payload: c.payload})
	}
	return a
}

func commandSeeds() []seedCmd {
	seeds := scenario()
	seeds = append(seeds,
		seedCmd{opCreate, nil},
		seedCmd{opRevoke, []byte{2}},
		seedCmd{opExpire, []byte{0}},
		seedCmd{9, nil},
	)
	return seeds
}

func snapshotSeeds(tb testing.TB) [][]byte {
	full := persist(tb, scenarioACL())
	return [][]byte{nil, full, full[:len(full)/2], []byte("SACL\x02\x00"), []byte("SLCK\x01\x00")}
}

// FuzzApplyCommand applies any command to the scenario's state: it never
// panics, a refused command changes nothing, and an applied one leaves a
// state that survives a snapshot round trip.
func FuzzApplyCommand(f *testing.F) {
	for _, c := range commandSeeds() {
		f.Add(c.op, c.payload)
	}
	base := persist(f, scenarioACL())
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		a := new(ACL)
		if err := a.Restore(bytes.NewReader(base)); err != nil {
			t.Fatal(err)
		}
		_, err := a.ApplyCommand(modules.Command{Index: 100, Time: testEpoch.Add(time.Hour), Op: op, Payload: payload})
		if err != nil {
			var e *httpjson.Error
			switch {
			case errors.Is(err, ErrMalformedCommand), errors.Is(err, ErrUnknownOp):
			case errors.As(err, &e) && e.Status >= 400 && e.Status < 500:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if !bytes.Equal(persist(t, a), base) {
				t.Fatalf("a refused command (%v) changed the state", err)
			}
			return
		}
		checkRoundTrip(t, a)
	})
}

// FuzzRestore restores any bytes: never a panic; what is accepted
// persists back to the same bytes (one encoding per state).
func FuzzRestore(f *testing.F) {
	for _, s := range snapshotSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := new(ACL)
		if err := a.Restore(bytes.NewReader(b)); err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if got := persist(t, a); len(b) > 0 && !bytes.Equal(got, b) {
			t.Fatalf("restored %x, persisted %x", b, got)
		}
		checkRoundTrip(t, a)
	})
}

// checkRoundTrip checks the state's indexes and that a snapshot restores
// to the same bytes.
func checkRoundTrip(t *testing.T, a *ACL) {
	t.Helper()
	st := a.st
	if len(st.byName) != len(st.byAccessor) || len(st.byHash) != len(st.byAccessor) || len(st.byAccessor) > maxTokens {
		t.Fatalf("indexes disagree: %d accessors, %d names, %d hashes", len(st.byAccessor), len(st.byName), len(st.byHash))
	}
	for acc, e := range st.byAccessor {
		if e.accessor != acc || st.byName[e.name] != e || st.byHash[e.hash] != e {
			t.Fatalf("token %q is not indexed consistently", acc)
		}
	}
	b := persist(t, a)
	again := new(ACL)
	if err := again.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("restore of a persisted state: %v", err)
	}
	if !bytes.Equal(persist(t, again), b) {
		t.Fatal("snapshot round trip changed the bytes")
	}
}

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
	for i, c := range commandSeeds() {
		write("FuzzApplyCommand", i, fmt.Sprintf("byte(%q)", rune(c.op)), fmt.Sprintf("[]byte(%q)", c.payload))
	}
	for i, seed := range snapshotSeeds(t) {
		write("FuzzRestore", i, fmt.Sprintf("[]byte(%q)", seed))
	}
}

// TestDecoders_RoundTrip: every command and result encoding decodes to
// what was encoded.
func TestDecoders_RoundTrip(t *testing.T) {
	r, _ := ParseRule("kv:read:a/")
	c := createCmd{accessor: "00000000-0000-4000-8000-000000000001", name: "n", ttl: time.Hour, rules: []Rule{r, {Operator: true}}}
	c.hash[3] = 9
	got, err := decodeCreate(encodeCreate(c))
	if err != nil || got.accessor != c.accessor || got.name != c.name || got.hash != c.hash || got.ttl != c.ttl || len(got.rules) != 2 || got.rules[0] != r || !got.rules[1].Operator {
		t.Fatalf("create: %+v %v", got, err)
	}
	for _, rc := range []revokeCmd{{id: c.accessor}, {byName: true, id: "n"}} {
		if got, err := decodeRevoke(encodeRevoke(rc)); err != nil || got != rc {
			t.Fatalf("revoke: %+v %v", got, err)
		}
	}
	// A name must not pass as an accessor, nor the reverse.
	if _, err := decodeRevoke(encodeRevoke(revokeCmd{id: "n"})); err == nil {
		t.Fatal("revoke by accessor accepted a name")
	}
	if _, err := decodeRevoke(encodeRevoke(revokeCmd{byName: true, id: c.accessor})); err == nil {
		t.Fatal("revoke by name accepted an accessor")
	}
	if n, err := decodeExpireResult(encodeExpireResult(3)); err != nil || n != 3 {
		t.Fatalf("expire result: %d %v", n, err)
	}
	if cr, ex, err := decodeCreateResult(encodeCreateResult(-5, 7)); err != nil || cr != -5 || ex != 7 {
		t.Fatalf("create result: %d %d %v", cr, ex, err)
	}
	// A rule not in its canonical form is refused by the decoder.
	b := encodeCreate(c)
	b = bytes.Replace(b, []byte("kv:read:a/"), []byte("kv:read:a*"), 1)
	if _, err := decodeCreate(b); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("non-canonical rule: %v", err)
	}
}
