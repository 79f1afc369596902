package doctest

import (
	"strings"
	"testing"
)

func TestMatch_Rules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		want, got string
		ok        bool
	}{
		{"same json", `{"index":1}`, `{"index":1}` + "\n", true},
		{"numbers are volatile", `{"index":1}`, `{"index":42}`, true},
		{"missing key", `{"index":1,"duplicate":true}`, `{"index":1}`, false},
		{"extra key", `{"index":1}`, `{"index":1,"duplicate":true}`, false},
		{"extra key with rest", `{"index":1,...}`, `{"index":1,"duplicate":true}`, true},
		{"boolean differs", `{"duplicate":true}`, `{"duplicate":false}`, false},
		{"type differs", `{"index":1}`, `{"index":"1"}`, false},
		{"string differs", `{"code":"semaphore_full"}`, `{"code":"limit_conflict"}`, false},
		{"times and node names", `{"time":"2025-06-01T10:00:00.123456789Z","node":"node1"}`, `{"time":"2026-12-05T21:10:00.5Z","node":"node0"}`, true},
		{"ellipsis value", `{"version":...,"v":{...},"s":"..."}`, `{"version":{"a":1},"v":{"b":[1]},"s":"x"}`, true},
		{"array rest", `{"entries":[{"index":1,...}, ...],"next":4}`, `{"entries":[{"index":1,"id":"a"},{"index":2}],"next":3}`, true},
		{"array too short", `[1,2]`, `[1]`, false},
		{"array too long", `[1]`, `[1,2]`, false},
		{"indented json", "[\n  {\n    \"name\": \"n1\"\n  }\n]", `[{"name":"node0"}]`, true},
		{"text", "index 1 (duplicate)", "index 7 (duplicate)", true},
		{"text differs", "index 1 (duplicate)", "index 7", false},
		{"table blanks", "NAME   FIRST\norders 1", "NAME FIRST\norders      12", true},
		{"inline ellipsis", "version ...@node1", "version 1765.0@node0", true},
		{"ellipsis lines", "HTTP/1.1 200 OK\n...\n{\"key\":\"k\"}", "HTTP/1.1 200 OK\r\nDate: x\r\nEtag: y\r\n\r\n{\"key\":\"k\"}", true},
		{"status differs", "HTTP/1.1 201 Created", "HTTP/1.1 200 OK", false},
		{"missing line", "a\nb", "a", false},
		{"json shown, text got", `{"a":1}`, `a: 1`, false},
		{"blank lines ignored", "a\n\nb\n", "a\nb", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Match(tc.want, tc.got)
			if (err == nil) != tc.ok {
				t.Fatalf("Match(%q, %q) = %v, want ok %v", tc.want, tc.got, err, tc.ok)
			}
		})
	}
}

func TestExtract_Markers(t *testing.T) {
	doc := "x\n<!-- doctest: a cluster=2 eventually=2s -->\n```sh\necho hi\n```\n" +
		"<!-- doctest-output: a -->\n```\nhi\n```\n" +
		"<!-- doctest: b exit=1 -->\n```console\n$ echo one \\\n  two\none two\n$ false\n```\n" +
		"```sh\nnot marked\n```\n" +
		"````markdown\n<!-- doctest: shown -->\n```sh\nnot run\n```\n````\n"
	blocks, err := Extract("d.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks, want 2", len(blocks))
	}
	a, b := blocks[0], blocks[1]
	if a.Name != "a" || a.Lang != "sh" || a.Script != "echo hi\n" || a.Want != "hi\n" || a.Nodes != 2 || a.Eventually.String() != "2s" || a.Line != 3 {
		t.Fatalf("block a: %+v", a)
	}
	if b.Exit != 1 || len(b.Commands) != 2 || b.Commands[0].Text != "echo one \\\n  two" || b.Commands[0].Want != "one two\n" || b.Commands[1].Want != "" {
		t.Fatalf("block b: %+v", b)
	}
	for _, bad := range []string{
		"<!-- doctest: a -->\ntext\n",                                              // no fence
		"<!-- doctest a -->\n```sh\nx\n```\n",                                      // malformed
		"<!-- doctest: a nodes=2 -->\n```sh\nx\n```\n",                             // unknown option
		"<!-- doctest-output: z -->\n```\nx\n```\n",                                // no such block
		"<!-- doctest: a -->\n```go\nx\n```\n",                                     // not shell
		"<!-- doctest: a -->\n```sh\nx\n```\n<!-- doctest: a -->\n```sh\nx\n```\n", // twice
	} {
		if _, err := Extract("d.md", bad); err == nil {
			t.Errorf("Extract(%q) succeeded, want an error", bad)
		} else if !strings.Contains(err.Error(), "d.md:") {
			t.Errorf("Extract(%q): %v does not name the place", bad, err)
		}
	}
}
