package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestCanonical_SortsKeysAndNormalises(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":[1.0, 2e0, {"z":null,"y":"<&>"}]}`, `{"a":[1,2,{"y":"<&>","z":null}],"b":1}`},
		{` { } `, `{}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`"x"`, `"x"`},
	}
	for _, tt := range tests {
		got, err := Canonical([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Fatalf("Canonical(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `{} {}`, `nul`} {
		if _, err := Canonical([]byte(bad)); !errors.Is(err, ErrNotJSON) {
			t.Fatalf("Canonical(%q): got %v, want ErrNotJSON", bad, err)
		}
	}
}

func TestObject_Limits(t *testing.T) {
	if _, err := Object([]byte(`[1]`), 0); !errors.Is(err, ErrNotObject) {
		t.Fatalf("got %v, want ErrNotObject", err)
	}
	if _, err := Object([]byte(`{"a":"0123456789"}`), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestApply(t *testing.T) {
	doc := []byte(`{"a":1,"b":[1,2]}`)
	tests := []struct {
		patch, want string
		err         error
	}{
		{`[{"op":"replace","path":"/a","value":2}]`, `{"a":2,"b":[1,2]}`, nil},
		{`[{"op":"add","path":"/b/-","value":3},{"op":"remove","path":"/a"}]`, `{"b":[1,2,3]}`, nil},
		{`[]`, `{"a":1,"b":[1,2]}`, nil},
		{`[{"op":"test","path":"/a","value":5}]`, ``, ErrPatchFailed},
		{`[{"op":"remove","path":"/zz"}]`, ``, ErrPatchFailed},
		{`[{"op":"replace","path":"","value":[1]}]`, ``, ErrPatchFailed},
		{`[{"op":"add","path":"/c","value":"0123456789012345678901234567890123456789"}]`, ``, ErrTooLarge},
		{`[{"op":"remove","path":"/b/-1"}]`, ``, ErrPatchFailed},
	}
	for _, tt := range tests {
		got, err := Apply(doc, []byte(tt.patch), 40)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Fatalf("Apply(%s): got %s, %v; want %v", tt.patch, got, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Fatalf("Apply(%s) = %s, %v; want %s", tt.patch, got, err, tt.want)
		}
	}
}

func TestPatch_Validates(t *testing.T) {
	for _, bad := range []string{`{}`, `[1]`, `[{"op":"add","path":"/a"}]`, `[{"op":"jump","path":"/a"}]`, `[{"op":"move","path":"/a"}]`, `[{"op":"remove"}]`} {
		if _, err := Patch([]byte(bad)); !errors.Is(err, ErrBadPatch) {
			t.Fatalf("Patch(%s): got %v, want ErrBadPatch", bad, err)
		}
	}
	got, err := Patch([]byte(`[{"value":null,"path":"/a","op":"add"}]`))
	if err != nil || string(got) != `[{"op":"add","path":"/a","value":null}]` {
		t.Fatalf("got %s, %v", got, err)
	}
}

func TestDiff_RoundTrips(t *testing.T) {
	big := `"` + string(bytes.Repeat([]byte("x"), 200)) + `"`
	pairs := [][2]string{
		{`{"a":1,"big":` + big + `}`, `{"a":2,"big":` + big + `}`},
		{`{"a":[1,2,3],"big":` + big + `}`, `{"a":[1,3],"big":` + big + `,"n":null}`},
		{`{"a/b~c":{"x":1},"big":` + big + `}`, `{"a/b~c":{"x":2},"big":` + big + `}`},
	}
	for _, p := range pairs {
		from, _ := Canonical([]byte(p[0]))
		to, _ := Canonical([]byte(p[1]))
		patch, ok := Diff(from, to)
		if !ok {
			t.Fatalf("Diff(%s, %s): no patch", from, to)
		}
		got, err := Apply(from, patch, 0)
		if err != nil || !bytes.Equal(got, to) {
			t.Fatalf("Apply(Diff) = %s, %v; want %s", got, err, to)
		}
		if len(patch) >= len(to) {
			t.Fatalf("patch %s is not smaller than %s", patch, to)
		}
	}
	// A change of everything is not worth a patch.
	if _, ok := Diff([]byte(`{"a":1}`), []byte(`{"b":2}`)); ok {
		t.Fatalf("got a patch bigger than the object")
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"a", "a", true}, {"a", "b", false}, {"*", "", true}, {"*", "anything", true},
		{"my-object-*", "my-object-xxx", true}, {"my-object-*", "my-objec", false},
		{"*-x-*", "a-x-b", true}, {"*-x-*", "a-y-b", false}, {"a*b*c", "abbbc", true}, {"a*b*c", "acb", false},
		{"**", "x", true},
	}
	for _, tt := range tests {
		if got := Match(tt.p, tt.s); got != tt.want {
			t.Fatalf("Match(%q, %q) = %t, want %t", tt.p, tt.s, got, tt.want)
		}
	}
}

func TestVersion_Compare(t *testing.T) {
	v := func(s string) Version {
		t.Helper()
		x, err := ParseVersion([]byte(s))
		if err != nil {
			t.Fatalf("ParseVersion(%s): %v", s, err)
		}
		return x
	}
	tests := []struct {
		a, b  string
		c     int
		ok    bool
		newer bool // Newer(a, b)
	}{
		{`2`, `1`, 1, true, true},
		{`1`, `1.0`, 0, true, false},
		{`[1,2]`, `[1,1]`, 1, true, true},
		{`[1,2]`, `[1,2,0]`, -1, true, false},
		{`{"a":2,"b":1}`, `{"a":1,"b":1}`, 1, true, true},
		{`{"a":2,"b":0}`, `{"a":1,"b":1}`, 0, false, false},
		{`{"a":1,"c":1}`, `{"a":1,"b":1}`, 0, false, true},
		{`1`, `[1]`, 0, false, false},
	}
	for _, tt := range tests {
		c, ok := Compare(v(tt.a), v(tt.b))
		if c != tt.c || ok != tt.ok {
			t.Fatalf("Compare(%s, %s) = %d, %t; want %d, %t", tt.a, tt.b, c, ok, tt.c, tt.ok)
		}
		if got := Newer(v(tt.a), v(tt.b)); got != tt.newer {
			t.Fatalf("Newer(%s, %s) = %t, want %t", tt.a, tt.b, got, tt.newer)
		}
	}
	for _, bad := range []string{`"1"`, `[]`, `[1,"a"]`, `{}`, `{"a":{"b":1}}`, `null`, `1e999`} {
		if _, err := ParseVersion([]byte(bad)); !errors.Is(err, ErrBadVersion) {
			t.Fatalf("ParseVersion(%s): got %v, want ErrBadVersion", bad, err)
		}
	}
	if got := v(`{"b":[1, 2.50],"a":3}`).String(); got != `{"a":3,"b":[1,2.5]}` {
		t.Fatalf("got canonical %s", got)
	}
}

// fuzzPatches runs check on every canonical object and patch the fuzzer
// makes of its inputs, from the patch fuzzers' seeds.
func fuzzPatches(f *testing.F, check func(t *testing.T, doc, patch []byte)) {
	addPatchSeeds(f)
	f.Fuzz(func(t *testing.T, docIn, patchIn []byte) {
		doc, err := Object(docIn, 1<<16)
		if err != nil {
			return
		}
		patch, err := Patch(patchIn)
		if err != nil {
			return
		}
		check(t, doc, patch)
	})
}

// addPatchSeeds adds the (object, patch) seeds of the patch fuzzers.
func addPatchSeeds(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2]}`), []byte(`[{"op":"replace","path":"/a","value":2}]`))
	f.Add([]byte(`{"a":{"b":{}}}`), []byte(`[{"op":"copy","from":"/a","path":"/a/b/c"}]`))
	f.Add([]byte(`{}`), []byte(`[{"op":"move","from":"/x","path":"/y"}]`))
	f.Add([]byte(`{"a":[]}`), []byte(`[{"op":"add","path":"/a/-","value":{"k":[1,2]}},{"op":"test","path":"/a/0/k/1","value":2}]`))
	f.Add([]byte(`{"a":[1,2,3]}`), []byte(`[{"op":"remove","path":"/a/1"},{"op":"add","path":"/a/0","value":0}]`))
}

// FuzzApply checks that applying any patch to any object never panics,
// is deterministic, and yields a canonical object or an error.
func FuzzApply(f *testing.F) {
	fuzzPatches(f, func(t *testing.T, doc, patch []byte) {
		a, errA := Apply(doc, patch, 1<<16)
		b, errB := Apply(doc, patch, 1<<16)
		if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) {
			t.Fatalf("not deterministic: %s %v / %s %v", a, errA, b, errB)
		}
		if errA != nil {
			return
		}
		c, err := Object(a, 0)
		if err != nil || !bytes.Equal(c, a) {
			t.Fatalf("result %s is not a canonical object: %v", a, err)
		}
	})
}

// FuzzDiff checks that a diff, when one is returned, turns from into to.
func FuzzDiff(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"long enough to be worth a patch"}`), []byte(`{"a":2,"b":"long enough to be worth a patch"}`))
	f.Add([]byte(`{"a":[1,2,3,4,5,6,7,8,9]}`), []byte(`{"a":[1,2,3,4,6,7,8,9,10]}`))
	f.Add([]byte(`{"x~y":{"a/b":[null,true]}}`), []byte(`{"x~y":{"a/b":[null,false]}}`))
	f.Fuzz(func(t *testing.T, fromIn, toIn []byte) {
		from, err := Object(fromIn, 1<<16)
		if err != nil {
			return
		}
		to, err := Object(toIn, 1<<16)
		if err != nil {
			return
		}
		patch, ok := Diff(from, to)
		if !ok {
			return
		}
		got, err := Apply(from, patch, 0)
		if err != nil || !bytes.Equal(got, to) {
			t.Fatalf("Apply(from, Diff) = %s, %v; want %s", got, err, to)
		}
		var ops []json.RawMessage
		if json.Unmarshal(patch, &ops) != nil {
			t.Fatalf("patch %s is not an array", patch)
		}
	})
}
