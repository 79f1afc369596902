package ws

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHeaderTokens(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []string
	}{
		{"none", nil, nil},
		{"one", []string{"shoal.objects.v1"}, []string{"shoal.objects.v1"}},
		{"list", []string{"chat, shoal.objects.v1"}, []string{"chat", "shoal.objects.v1"}},
		{"several lines", []string{"a", "b, c"}, []string{"a", "b", "c"}},
		{"spaces and tabs", []string{" \ta ,\tb\t "}, []string{"a", "b"}},
		{"empty elements", []string{",a,, ,b,"}, []string{"a", "b"}},
		{"only commas", []string{", ,"}, nil},
		{"inner space kept", []string{"a b"}, []string{"a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headerTokens(tt.values); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHasToken(t *testing.T) {
	tests := []struct {
		values []string
		token  string
		fold   bool
		want   bool
	}{
		{[]string{"chat, shoal.objects.v1"}, "shoal.objects.v1", false, true},
		{[]string{"SHOAL.objects.v1"}, "shoal.objects.v1", false, false},
		{[]string{"SHOAL.objects.v1"}, "shoal.objects.v1", true, true},
		{[]string{"shoal.objects.v10"}, "shoal.objects.v1", false, false},
		{[]string{"keep-alive, Upgrade"}, "upgrade", true, true},
		{[]string{""}, "", false, false},
		{nil, "websocket", true, false},
	}
	for _, tt := range tests {
		if got := hasToken(tt.values, tt.token, tt.fold); got != tt.want {
			t.Fatalf("hasToken(%q, %q, %v) = %v, want %v", tt.values, tt.token, tt.fold, got, tt.want)
		}
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"shoal.objects.v1": true, "a!#$%&'*+-.^_`|~9": true,
		"": false, "a b": false, "a,b": false, "a/b": false, "é": false, "a\x00": false, `"a"`: false,
	} {
		if got := isToken(s); got != want {
			t.Fatalf("isToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCloseReason(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"short", "bye", "bye"},
		{"exactly the limit", strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"cut", strings.Repeat("a", 200), strings.Repeat("a", 123)},
		{"cut before a split character", strings.Repeat("a", 122) + "é", strings.Repeat("a", 122)},
		{"invalid UTF-8 dropped", "a\xffb", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := closeReason(tt.in)
			if got != tt.want || len(got) > maxReason || !utf8.ValidString(got) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSendable(t *testing.T) {
	for status, want := range map[StatusCode]StatusCode{
		1000: 1000, 1001: 1001, 1003: 1003, 1009: 1009, 1014: 1014, 3000: 3000, 4999: 4999,
		1004: 1011, 1005: 1011, 1006: 1011, 1015: 1011, 999: 1011, 2000: 1011, 5000: 1011, -1: 1011,
	} {
		if got := sendable(status); got != want {
			t.Fatalf("sendable(%d) = %d, want %d", status, got, want)
		}
	}
}

// The seed corpus lives in testdata/fuzz/FuzzHeaderTokens and runs in plain
// go test. Regenerate it with:
//
//	go test ./internal/ws -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpus in testdata/fuzz")

// headerSeeds are header values; a "\n" separates the lines of one field.
func headerSeeds() []string {
	return []string{
		"shoal.objects.v1",
		"chat, shoal.objects.v1",
		" \tchat ,\tshoal.objects.v1\t ",
		",,a, ,b,",
		"a\nb, c\n",
		"SHOAL.OBJECTS.V1",
		"shoal.objects.v1;q=1",
		"\"quoted, value\"",
		"é, \xff\xfe, a\x00b",
		"",
		",",
		strings.Repeat("x,", 64),
		"0ı", // no ASCII upper case: folding must not lose it
	}
}

// FuzzHeaderTokens checks headerTokens and hasToken on any header lines:
// tokens are non-empty, trimmed, comma-free, survive a round trip through
// a canonical list, and are exactly what hasToken finds.
func FuzzHeaderTokens(f *testing.F) {
	for _, s := range headerSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		values := strings.Split(raw, "\n")
		tokens := headerTokens(values)
		for _, tok := range tokens {
			if tok == "" || strings.Contains(tok, ",") || strings.Trim(tok, " \t") != tok {
				t.Fatalf("bad token %q from %q", tok, raw)
			}
			if !hasToken(values, tok, false) || !hasToken(values, asciiUpper(tok), true) {
				t.Fatalf("hasToken misses %q in %q", tok, raw)
			}
		}
		if again := headerTokens([]string{strings.Join(tokens, ", ")}); !slices.Equal(again, tokens) {
			t.Fatalf("round trip of %q: got %q, want %q", raw, again, tokens)
		}
		if hasToken(values, "", false) {
			t.Fatalf("hasToken found the empty token in %q", raw)
		}
		// A subprotocol Accept would take is a whole element, never part
		// of one: "x.v1" is not offered by "x.v10" or "a x.v1".
		for _, tok := range tokens {
			if isToken(tok) {
				continue
			}
			for _, part := range strings.FieldsFunc(tok, func(r rune) bool { return r == ' ' || r == '\t' }) {
				if part != tok && !slices.Contains(tokens, part) && hasToken(values, part, false) {
					t.Fatalf("hasToken found %q, only part of an element of %q", part, raw)
				}
			}
		}
	})
}

// asciiUpper upper-cases ASCII letters only, as a client may spell a
// header keyword ("WebSocket").
func asciiUpper(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHeaderTokens")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, seed := range headerSeeds() {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", seed)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
