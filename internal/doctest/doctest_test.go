package doctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal/internal/cli"
	"shoal/internal/testcluster"

	_ "shoal/modules/all" // the modules the binary ships: the test's nodes run the same set
)

// blockTimeout bounds one run of one block (or of one console command).
const blockTimeout = 20 * time.Second

// preamble runs before every block; see the package comment.
const preamble = `curl() { command curl --silent --show-error --fail-with-body --max-time 15 "$@"; }
shoal() { "$DOCTEST_SHOAL_BIN" "$@"; }
go() { if [ "${1-}" = run ] && [ "${2-}" = . ]; then shift 2; shoal "$@"; else command go "$@"; fi; }
`

// TestDocs runs the marked examples of README.md and docs/*.md, each
// document against its own fresh node(s), its blocks in order.
func TestDocs(t *testing.T) {
	root := moduleRoot(t)
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths = append([]string{filepath.Join(root, "README.md")}, paths...)
	type doc struct {
		name   string
		blocks []Block
	}
	var docs []doc
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, p)
		blocks, err := Extract(name, string(text))
		if err != nil {
			t.Errorf("extract examples: %v", err)
			continue
		}
		if len(blocks) > 0 {
			docs = append(docs, doc{name, blocks})
		}
	}
	if len(docs) == 0 {
		t.Fatalf("no marked example in README.md or docs/*.md: the markers or the extractor broke")
	}
	// The examples need bash, and a curl that knows --fail-with-body
	// (7.76, 2021): say so rather than fail every example.
	for _, tool := range [][]string{{"bash", "--version"}, {"curl", "--fail-with-body", "--version"}} {
		if out, err := exec.Command(tool[0], tool[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("the examples need %s: %v\n%s", strings.Join(tool, " "), err, out)
		}
	}
	bin := buildShoal(t, root)
	for _, d := range docs {
		t.Run(filepath.Base(d.name), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, bin, nodesFor(d.blocks))
			for _, b := range d.blocks {
				if err := e.run(b); err != nil {
					t.Errorf("%v", err)
				}
			}
			t.Logf("%d examples ran", len(d.blocks))
		})
	}
	t.Run("negative_control", func(t *testing.T) {
		t.Parallel()
		negativeControl(t, bin)
	})
}

// negativeControl feeds testdata/wrong.md through the same extractor,
// runner and matcher as the documents, and checks that exactly the wrong
// examples fail, each saying where and why.
func negativeControl(t *testing.T, bin string) {
	const page = "testdata/wrong.md"
	text, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Extract(page, string(text))
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	e := newEnv(t, bin, 1)
	want := map[string]string{
		"http-error":     "exit status 22",
		"limit-conflict": "limit_conflict",
		"wrong-key":      `no key "idx"`,
		"cli-error":      "key_not_found",
		"cli-output":     "the text differs",
		"extra-output":   "more than the document shows",
		"second-node":    "runs 1 node",
	}
	for _, b := range blocks {
		err := e.run(b)
		frag, mustFail := want[b.Name]
		switch {
		case !mustFail && err != nil:
			t.Errorf("block %q must pass: %v", b.Name, err)
		case mustFail && err == nil:
			t.Errorf("block %q is wrong, but the checker passed it", b.Name)
		case mustFail:
			msg := err.Error()
			for _, s := range []string{page + ":", strconv.Quote(b.Name), "--- command", frag} {
				if !strings.Contains(msg, s) {
					t.Errorf("block %q: the failure does not say %q:\n%s", b.Name, s, msg)
				}
			}
			t.Logf("failed as it must:\n%s", msg)
		}
	}
	if len(blocks) != len(want)+2 {
		t.Fatalf("extracted %d blocks, want %d", len(blocks), len(want)+2)
	}
}

func nodesFor(blocks []Block) int {
	n := 1
	for _, b := range blocks {
		n = max(n, b.Nodes)
	}
	if n == 2 {
		n = 3 // the voter set is odd: two servers would have one voter
	}
	return n
}

// moduleRoot is the directory of go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatalf("no go.mod above the test directory")
		}
		dir = up
	}
}

// buildShoal builds the shoal binary into a temporary directory, with the
// race detector when this test has it, so that go build links the
// packages already compiled for the test.
func buildShoal(t *testing.T, root string) string {
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "shoal")
	args := []string{"build", "-buildvcs=false", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// env is where one document's blocks run: its nodes, the binary, a
// working directory.
type env struct {
	logf  func(format string, args ...any) // t.Logf
	bin   string
	dir   string
	addrs []string // HTTP host:port of node i
}

func newEnv(t *testing.T, bin string, nodes int) *env {
	c := testcluster.New(t, nodes)
	e := &env{logf: t.Logf, bin: bin, dir: t.TempDir()}
	for _, n := range c.Nodes() {
		e.addrs = append(e.addrs, n.Addresses().HTTP)
	}
	return e
}

var (
	docAddrRE = regexp.MustCompile(`\b(?:localhost|127\.0\.0\.1):(7480|7490|7500)\b`)
	tmpRE     = regexp.MustCompile(`(^|[\s'"=@])/tmp/`)
)

// rewrite points a block's commands at the test's nodes and directory.
func (e *env) rewrite(script string) (string, error) {
	var err error
	script = docAddrRE.ReplaceAllStringFunc(script, func(m string) string {
		port, _ := strconv.Atoi(docAddrRE.FindStringSubmatch(m)[1])
		i := (port - 7480) / 10
		if i >= len(e.addrs) {
			err = fmt.Errorf("it uses %s, node %d's port, but the document runs %d node(s): add cluster=%d to its marker", m, i, len(e.addrs), i+1)
			return m
		}
		return e.addrs[i]
	})
	script = tmpRE.ReplaceAllString(script, "${1}"+e.dir+"/")
	return script, err
}

// result is what one script did.
type result struct {
	script         string
	stdout, stderr string
	exit           int
}

func (e *env) exec(script string) (result, error) {
	script, err := e.rewrite(script)
	r := result{script: script}
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", preamble+script)
	cmd.Dir = e.dir
	cmd.WaitDelay = 2 * time.Second
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") && !strings.HasPrefix(kv, "TMPDIR=") && !strings.HasPrefix(kv, "GORACE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// A binary built with -race sleeps a second at exit, waiting for
	// reports from other threads; the examples run dozens of commands.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Env = append(cmd.Env, "DOCTEST_SHOAL_BIN="+e.bin, cli.EnvName("SHOAL", "addr")+"=http://"+e.addrs[0], "TMPDIR="+e.dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r.stdout, r.stderr = stdout.String(), stderr.String()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.exit = exitErr.ExitCode()
		if ctx.Err() != nil {
			return r, fmt.Errorf("no end after %v", blockTimeout)
		}
	case err != nil:
		return r, fmt.Errorf("run bash: %w", err)
	}
	return r, nil
}

// run runs block b (again and again within its eventually= window) and
// returns why it failed, naming the document, the block, the command and
// its output.
func (e *env) run(b Block) error {
	deadline := time.Now().Add(b.Eventually)
	for {
		err := e.runOnce(b)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			if b.Eventually > 0 {
				err = fmt.Errorf("%w\n(still failing after eventually=%v)", err, b.Eventually)
			}
			return err
		}
		time.Sleep(100 * time.Millisecond) // polling interval within the block's window
	}
}

func (e *env) runOnce(b Block) error {
	if b.Lang == "sh" {
		return e.check(b, b.Line, b.Script, b.Want, b.WantLine)
	}
	for _, c := range b.Commands {
		if err := e.check(b, c.Line, c.Text, c.Want, c.Line+1); err != nil {
			return err
		}
	}
	return nil
}

// check runs one script of b and compares its exit status and output.
func (e *env) check(b Block, line int, script, want string, wantLine int) error {
	r, err := e.exec(script)
	fail := func(why string) error {
		var msg strings.Builder
		fmt.Fprintf(&msg, "%s:%d: example %q: %s\n", b.Doc, line, b.Name, why)
		fmt.Fprintf(&msg, "--- command (addresses rewritten):\n%s\n", indent(r.script))
		fmt.Fprintf(&msg, "--- stdout:\n%s\n", indent(r.stdout))
		fmt.Fprintf(&msg, "--- stderr:\n%s", indent(r.stderr))
		if want != "" {
			fmt.Fprintf(&msg, "\n--- output shown in the document (%s:%d):\n%s", b.Doc, wantLine, indent(want))
		}
		return errors.New(msg.String())
	}
	if err != nil {
		return fail(err.Error())
	}
	if r.exit != b.Exit {
		why := fmt.Sprintf("exit status %d, want %d", r.exit, b.Exit)
		if r.exit == 22 && strings.Contains(r.script, "curl") {
			why += " (curl got an HTTP error: 4xx or 5xx)"
		}
		return fail(why)
	}
	if strings.TrimSpace(want) != "" {
		if err := Match(want, r.stdout); err != nil {
			return fail("the output does not match the document: " + err.Error())
		}
	}
	e.logf("%s:%d: example %q passed; stdout:\n%s", b.Doc, line, b.Name, indent(r.stdout))
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (empty)"
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// The five documents the convention started with keep runnable examples:
// a marker removed by mistake would silently drop them.
func TestDocs_Covered(t *testing.T) {
	root := moduleRoot(t)
	for _, p := range []string{"README.md", "docs/kv.md", "docs/locks.md", "docs/log.md", "docs/cli.md"} {
		text, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Extract(p, string(text))
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			t.Errorf("%s has no runnable example", p)
		}
		var names []string
		for _, b := range blocks {
			names = append(names, b.Name)
		}
		slices.Sort(names)
		t.Logf("%s: %d examples: %s", p, len(blocks), strings.Join(names, ", "))
	}
}
