package protocol

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The seed corpus lives in testdata/fuzz/FuzzDecodeClient/ and runs in
// plain go test. Regenerate it with: go test -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

var decodeSeeds = []string{
	`{"type":"subscribe","id":"a","have_version":1}`,
	`{"type":"subscribe","pattern":"my-object-*","ref":"r"}`,
	`{"type":"unsubscribe","id":"a"}`,
	`{"type":"set","id":"a","version":[1,2],"object":{"x":[1,{"y":null}]}}`,
	`{"type":"patch","id":"a","from":1,"to":2,"patch":[{"op":"add","path":"/x","value":1}]}`,
	`{"type":"produce","patterns":["*","a-*"]}`,
	`{"type":"produced","id":"a","version":{"dep":1},"object":{}}`,
	`{"type":"stall","id":"a","version":2}`,
	`{"type":"failed","id":"a"}`,
	`{"type":"master","id":"a"}`,
	`{"type":"release","id":"a"}`,
	`{"type":"x"}`,
	`[]`,
	`{"type":"set","id":"a","version":1,"object":{},"object":{}}`,
	`{"type":"subscribe","id":"\u0000"}`,
	`{"type":"master","id":"a"} trailing`,
	`{"type":"subscribe","pattern":"a-*","have_versions":{"a-1":3,"a-2":{"d":1},"b":1}}`,
}

func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeClient")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range decodeSeeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
