package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCompletion_Scripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			code, out, errs := runIn(nil, "completion", shell)
			if code != 0 || errs != "" {
				t.Fatalf("got %d, stderr %q", code, errs)
			}
			// Every command and subcommand of the table, and the flags of
			// one command, from its own flag set.
			for _, c := range commands() {
				if !strings.Contains(out, c.name) {
					t.Errorf("the %s script lacks command %q", shell, c.name)
				}
			}
			for _, s := range logCommands() {
				if !strings.Contains(out, s.name) {
					t.Errorf("the %s script lacks log %q", shell, s.name)
				}
			}
			for _, w := range []string{"max-entries", "retry-for", "addr", "data-dir"} {
				if !strings.Contains(out, w) {
					t.Errorf("the %s script lacks flag %q", shell, w)
				}
			}
			if path, err := exec.LookPath(shell); err == nil {
				cmd := exec.Command(path, "-n")
				cmd.Stdin = strings.NewReader(out)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s -n: %v\n%s", shell, err, b)
				}
			}
		})
	}
	code, _, errs := runIn(nil, "completion", "tcsh")
	if code != 2 || !strings.Contains(errs, `unknown shell "tcsh"`) {
		t.Fatalf("got %d, %q", code, errs)
	}
}

// TestCompletion_Bash drives the bash script as bash would on Tab.
func TestCompletion_Bash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, script, _ := runIn(nil, "completion", "bash")
	file := filepath.Join(t.TempDir(), "shoal.bash")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		words []string // the last one is being completed
		want  string
	}{
		{[]string{"shoal", "lo"}, "lock log"},
		{[]string{"shoal", "log", ""}, "list publish read tail set rm"},
		{[]string{"shoal", "log", "set", "--max"}, "--max-age --max-bytes --max-entries"},
		{[]string{"shoal", "--addr", "x", "kv", "p"}, "put"},
		{[]string{"shoal", "kv", "watch", "--re"}, "--retry-for"},
		{[]string{"shoal", "members", "-o", ""}, "table json"},
		{[]string{"shoal", "completion", ""}, "bash zsh fish"},
	} {
		quoted := make([]string, len(tt.words))
		for i, w := range tt.words {
			quoted[i] = shellQuote(w)
		}
		prog := "source " + shellQuote(file) + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(tt.words)-1) + "\n_shoal\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("completing %q: got %q, want %q", tt.words, got, tt.want)
		}
	}
}

// TestCompletion_Zsh drives the zsh script with compadd and _files
// stubbed: zsh itself filters the candidates by what is typed.
func TestCompletion_Zsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh")
	}
	_, script, _ := runIn(nil, "completion", "zsh")
	file := filepath.Join(t.TempDir(), "_shoal")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"shoal", "log", ""}, "list publish read tail set rm"},
		{[]string{"shoal", "--addr", "x", "kv", "p"}, "put get del ls watch"},
		{[]string{"shoal", "members", "-o", ""}, "table json"},
		{[]string{"shoal", "kv", "put", "--addr", ""}, "FILES"},
		{[]string{"shoal", "log", "publish", "orders", "@"}, "FILES"},
	} {
		quoted := make([]string, len(tt.words))
		for i, w := range tt.words {
			quoted[i] = shellQuote(w)
		}
		prog := "compdef() { :; }\ncompadd() { [[ $1 == -- ]] && shift; print -r -- \"$*\"; }\n_files() { print -r -- FILES; }\n" +
			"source " + shellQuote(file) + "\nwords=(" + strings.Join(quoted, " ") + ")\nCURRENT=" + strconv.Itoa(len(tt.words)) + "\n_shoal\n"
		out, err := exec.Command(zsh, "-f", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("zsh: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("completing %q: got %q, want %q", tt.words, got, tt.want)
		}
	}
	out, _ := exec.Command(zsh, "-f", "-c", "compdef() { :; }\ncompadd() { [[ $1 == -- ]] && shift; print -r -- \"$*\"; }\nsource "+shellQuote(file)+"\nwords=(shoal log set --max)\nCURRENT=4\n_shoal\n").CombinedOutput()
	for _, f := range []string{"--max-age", "--max-bytes", "--max-entries", "--addr", "-o"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("log set flags %q lack %s", out, f)
		}
	}
}

// TestCompletion_Fish asks fish itself what it completes.
func TestCompletion_Fish(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("no fish")
	}
	_, script, _ := runIn(nil, "completion", "fish")
	file := filepath.Join(t.TempDir(), "shoal.fish")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		line string
		want []string
	}{
		{"shoal lo", []string{"lock", "log"}},
		{"shoal log s", []string{"set"}},
		{"shoal log set --max", []string{"--max-age", "--max-bytes", "--max-entries"}},
		{"shoal --addr x kv p", []string{"put"}},
		{"shoal members -o ", []string{"json", "table"}},
		{"shoal completion ", []string{"bash", "fish", "zsh"}},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source "+shellQuote(file)+"; complete -C "+shellQuote(tt.line))
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			word, _, _ := strings.Cut(l, "\t")
			got = append(got, word)
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("completing %q: got %q, want %q", tt.line, got, tt.want)
		}
	}
}
