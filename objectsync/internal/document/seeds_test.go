package document

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain go
// test. Regenerate them with: go test -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

var applySeeds = [][2]string{
	{`{"a":1,"b":[1,2]}`, `[{"op":"replace","path":"/a","value":2}]`},
	{`{"a":{"b":{}}}`, `[{"op":"copy","from":"/a","path":"/a/b/c"}]`},
	{`{}`, `[{"op":"move","from":"/x","path":"/y"}]`},
	{`{"a":[]}`, `[{"op":"add","path":"/a/-","value":{"k":[1,2]}},{"op":"test","path":"/a/0/k/1","value":2}]`},
	{`{"a~b":{"c/d":1}}`, `[{"op":"remove","path":"/a~0b/c~1d"}]`},
	{`{"a":[1,2,3]}`, `[{"op":"remove","path":"/a/-1"}]`},
	{`{"a":1}`, `[{"op":"replace","path":"","value":{"b":2}}]`},
}

var diffSeeds = [][2]string{
	{`{"a":1,"b":"long enough to be worth a patch"}`, `{"a":2,"b":"long enough to be worth a patch"}`},
	{`{"a":[1,2,3,4,5,6,7,8,9]}`, `{"a":[1,2,3,4,6,7,8,9,10]}`},
	{`{"x~y":{"a/b":[null,true]}}`, `{"x~y":{"a/b":[null,false]}}`},
	{`{"a":{"b":{"c":[{"d":1}]}},"pad":"................"}`, `{"a":{"b":{"c":[{"d":2},{"e":null}]}},"pad":"................"}`},
}

// canonicalSeeds are inputs on both sides of canonical: unsorted and
// repeated keys, whitespace, every number notation, every escape.
var canonicalSeeds = []string{
	`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`, ` {}`, `{} `,
	`[1.0,1e3,1E21,1e21,-0,0.000001,1e-7,123456789012345678901234,0.1]`, `"\u2028\u00e9\/\b\f\n\r\t\u0001\ufffd"`,
	"\"\xff\"", "\"\u2029\"", `"é"`, `{"\u0000":1,"":2}`, `01`, `+1`, `1.`, `.5`, `-`, `1e400`, `tru`, `nulls`,
}

func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	write := func(fuzz string, seeds [][2]string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", s[0], s[1])
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzApply", applySeeds)
	write("FuzzDiff", diffSeeds)
	write("FuzzApplyCanonical", applySeeds)
	dir := filepath.Join("testdata", "fuzz", "FuzzCanonical")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range canonicalSeeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
