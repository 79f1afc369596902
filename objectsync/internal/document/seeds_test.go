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
}
