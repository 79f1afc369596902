package document

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// spliceAgrees applies patch to the canonical doc with Apply and with the
// splice, and fails the test unless they agree: when the splice applies
// a patch, Apply succeeds with the same bytes; ApplyCanonical always
// gives what Apply gives. It reports whether the splice applied it.
func spliceAgrees(t *testing.T, doc, patch []byte, maxSize int) bool {
	t.Helper()
	want, errWant := Apply(doc, patch, maxSize)
	got, ok := spliceApply(doc, patch, maxSize)
	if ok && (errWant != nil || !bytes.Equal(got, want)) {
		t.Fatalf("%s on %s: Apply = %s, %v; splice = %s", patch, doc, want, errWant, got)
	}
	viaCanonical, err := ApplyCanonical(doc, patch, maxSize)
	if (err == nil) != (errWant == nil) || !bytes.Equal(viaCanonical, want) {
		t.Fatalf("%s on %s: Apply = %s, %v; ApplyCanonical = %s, %v", patch, doc, want, errWant, viaCanonical, err)
	}
	if errWant != nil && err.Error() != errWant.Error() {
		t.Fatalf("%s on %s: Apply's error %q, ApplyCanonical's %q", patch, doc, errWant, err)
	}
	if ok && len(got) > 0 && &got[0] == &doc[0] {
		t.Fatalf("%s on %s: the result shares doc's bytes", patch, doc)
	}
	return ok
}

// TestApplyCanonical_AgreesWithApply: the splice gives what Apply gives on
// every operation and failure of the agreement cases, and on a document
// that is left as it was.
func TestApplyCanonical_AgreesWithApply(t *testing.T) {
	doc, err := Object([]byte(agreementDoc), 0)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), doc...)
	for _, patch := range agreementPatches {
		if p, err := Patch([]byte(patch)); err == nil {
			spliceAgrees(t, doc, p, 0)
		}
	}
	if !bytes.Equal(doc, before) {
		t.Fatalf("the document changed: %s", doc)
	}
}

// TestSpliceApply_TakesDiffOperations: what diffs are made of is applied
// on the bytes, not left to Apply: otherwise the fast path is not one.
func TestSpliceApply_TakesDiffOperations(t *testing.T) {
	doc := []byte(`{"":0,"a":1,"arr":[1,2,3],"e":{},"n":{"x":{"y":[{"k":"v"}]}},"q\"uote":"\u0000","z":[]}`)
	if c, err := Object(doc, 0); err != nil || !bytes.Equal(c, doc) {
		t.Fatalf("the test document is not canonical: %s", c)
	}
	for _, patch := range []string{
		`[]`,
		`[{"op":"replace","path":"/a","value":{"deep":[1,{"b":null}]}}]`,
		`[{"op":"replace","path":"/n/x/y/0/k","value":"w"}]`,
		`[{"op":"add","path":"/0","value":true}]`,    // first, after ""
		`[{"op":"add","path":"/b","value":"mid"}]`,   // between two keys
		`[{"op":"add","path":"/zz","value":false}]`,  // last
		`[{"op":"add","path":"/e/k","value":1}]`,     // into an empty object
		`[{"op":"add","path":"/z/0","value":1}]`,     // into an empty array
		`[{"op":"add","path":"/z/-","value":1}]`,     // appended to an empty array
		`[{"op":"add","path":"/arr/0","value":0}]`,   // first element
		`[{"op":"add","path":"/arr/2","value":2.5}]`, // middle
		`[{"op":"add","path":"/arr/3","value":4}]`,   // last, by index
		`[{"op":"add","path":"/arr/-","value":4}]`,
		`[{"op":"add","path":"/a","value":"replaced by add"}]`,
		`[{"op":"add","path":"/q\"uote","value":"escaped key"}]`,
		`[{"op":"remove","path":"/"}]`, // the key ""... is refused as not simple; see below
		`[{"op":"remove","path":"/a"}]`,
		`[{"op":"remove","path":"/z"}]`, // the last member
		`[{"op":"remove","path":"/arr/0"}]`,
		`[{"op":"remove","path":"/arr/1"}]`,
		`[{"op":"remove","path":"/arr/2"}]`,
		`[{"op":"remove","path":"/n/x/y/0"}]`, // the only element
		`[{"op":"remove","path":"/n/x"}]`,     // the only member
		`[{"op":"test","path":"/arr","value":[1,2,3]},{"op":"replace","path":"/arr/1","value":20}]`,
		`[{"op":"test","path":"/a","value":1.0}]`,
		`[{"op":"add","path":"/new","value":1},{"op":"remove","path":"/new"},{"op":"add","path":"/arr/-","value":[]},{"op":"add","path":"/arr/3/-","value":"x"}]`,
	} {
		p, err := Patch([]byte(patch))
		if err != nil {
			t.Fatal(err)
		}
		taken := spliceAgrees(t, doc, p, 0)
		wantTaken := !strings.Contains(patch, `"path":"/"}`)
		if taken != wantTaken {
			t.Errorf("%s: applied on the bytes = %t, want %t", patch, taken, wantTaken)
		}
	}
}

// TestSpliceApply_DeclinesWhatItCannotSettle: failures, tests that fail and
// results over the limit go to Apply, which words the error.
func TestSpliceApply_DeclinesWhatItCannotSettle(t *testing.T) {
	doc := []byte(`{"a":1,"arr":[1,2,3],"s":"x"}`)
	for _, c := range []struct {
		patch   string
		maxSize int
	}{
		{`[{"op":"replace","path":"/missing","value":1}]`, 0},
		{`[{"op":"remove","path":"/arr/3"}]`, 0},
		{`[{"op":"add","path":"/arr/5","value":1}]`, 0},
		{`[{"op":"add","path":"/s/x","value":1}]`, 0},
		{`[{"op":"test","path":"/a","value":2}]`, 0},
		{`[{"op":"test","path":"/arr/-","value":2}]`, 0},
		{`[{"op":"add","path":"/big","value":"` + strings.Repeat("x", 40) + `"}]`, 40},
		{`[{"op":"move","from":"/a","path":"/b"}]`, 0},
	} {
		p, err := Patch([]byte(c.patch))
		if err != nil {
			t.Fatal(err)
		}
		if spliceAgrees(t, doc, p, c.maxSize) {
			t.Errorf("%s: applied on the bytes, want it left to Apply", c.patch)
		}
	}
}

// FuzzApplyCanonical: on any canonical object and any patch Patch accepts,
// the splice never panics and ApplyCanonical agrees with Apply.
func FuzzApplyCanonical(f *testing.F) {
	fuzzPatches(f, func(t *testing.T, doc, patch []byte) { spliceAgrees(t, doc, patch, 1<<16) })
}

// TestDiff_WalksTheEncodings: a change of members is found by the walk of
// the two encodings, as the few operations it takes, and applies on the
// bytes.
func TestDiff_WalksTheEncodings(t *testing.T) {
	from := benchObject(0)
	to := benchObject(1)
	patch, ok := Diff(from, to)
	if !ok {
		t.Fatal("no patch")
	}
	if want := `[{"op":"replace","path":"/sent_us","value":1}]`; string(patch) != want {
		t.Fatalf("patch %s, want %s", patch, want)
	}
	for _, c := range [][2]string{
		{`{"a":{"b":1,"c":[1,2]},"d":1,"pad":"` + strings.Repeat(".", 200) + `"}`, `{"a":{"c":[1,2,3],"x~/":null},"e":"new","pad":"` + strings.Repeat(".", 200) + `"}`},
		{`{"arr":[1,2,3,4],"pad":"` + strings.Repeat(".", 200) + `"}`, `{"arr":[1,5],"pad":"` + strings.Repeat(".", 200) + `"}`},
		{`{"v":[1],"pad":"` + strings.Repeat(".", 200) + `"}`, `{"v":{"0":1},"pad":"` + strings.Repeat(".", 200) + `"}`},
	} {
		from, _ := Object([]byte(c[0]), 0)
		to, _ := Object([]byte(c[1]), 0)
		p, ok := spliceDiff(from, to)
		if !ok {
			t.Fatalf("%s -> %s: the walk failed", from, to)
		}
		got, ok := spliceApply(from, p, 0)
		if !ok || !bytes.Equal(got, to) {
			t.Fatalf("%s -> %s: patch %s gives %s (applied on the bytes: %t)", from, to, p, got, ok)
		}
		if canon, err := Patch(p); err != nil || !bytes.Equal(canon, p) {
			t.Fatalf("patch %s is not canonical (%s, %v)", p, canon, err)
		}
	}
}

// benchObject is the benchmark's object: 127 string fields and sent_us,
// about 10 KB of canonical JSON.
func benchObject(sent int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 127; i++ {
		fmt.Fprintf(&b, `"field_%03d":"%s",`, i, strings.Repeat("v", 64))
	}
	fmt.Fprintf(&b, `"sent_us":%d}`, sent)
	out, err := Object([]byte(b.String()), 0)
	if err != nil {
		panic(err)
	}
	return out
}

func BenchmarkApply10KB(b *testing.B) {
	doc := benchObject(0)
	patch := []byte(`[{"op":"replace","path":"/sent_us","value":1733449600000000}]`)
	b.Run("decoded", func(b *testing.B) {
		for b.Loop() {
			if _, err := Apply(doc, patch, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := ApplyCanonical(doc, patch, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDiff10KB(b *testing.B) {
	from, to := benchObject(0), benchObject(1733449600000000)
	for b.Loop() {
		if _, ok := Diff(from, to); !ok {
			b.Fatal("no patch")
		}
	}
}

func BenchmarkObject10KB(b *testing.B) {
	doc := benchObject(1733449600000000)
	for b.Loop() {
		if _, err := Object(doc, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCanonical: isCanonical never says yes to what Canonical would
// change, and says yes to whatever Canonical writes (else the fast path
// is never taken).
func FuzzCanonical(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if isCanonical(in) {
			var v any
			if err := json.Unmarshal(in, &v); err != nil {
				t.Fatalf("%q is called canonical, but it is not JSON: %v", in, err)
			}
			c, err := Encode(v)
			if err != nil || !bytes.Equal(c, in) {
				t.Fatalf("%q is called canonical, but the encoding is %q (%v)", in, c, err)
			}
		}
		c, err := Canonical(in)
		if err != nil {
			return
		}
		if !isCanonical(c) {
			t.Fatalf("Canonical(%q) = %q is not called canonical", in, c)
		}
	})
}
