package doctest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Block is one runnable example of a document.
type Block struct {
	Doc  string // the document's path, for messages
	Name string
	Line int    // line of the opening fence
	Lang string // "sh" or "console"
	// Script is the whole block (sh).
	Script string
	// Commands are the "$ " commands of a console block, each with the
	// output the document shows after it.
	Commands []Command
	// Want is the expected output of an sh block ("" when the document
	// shows none), WantLine the line of its fence.
	Want     string
	WantLine int
	// Options.
	Nodes      int
	Eventually time.Duration
	Exit       int
}

// Command is one command of a console block and the output shown after
// it.
type Command struct {
	Line int
	Text string
	Want string
}

var (
	markerRE = regexp.MustCompile(`^<!--\s*doctest:\s*([A-Za-z0-9_.-]+)((?:\s+[a-z]+=\S+)*)\s*-->\s*$`)
	outputRE = regexp.MustCompile(`^<!--\s*doctest-output:\s*([A-Za-z0-9_.-]+)\s*-->\s*$`)
	// anyMarkerRE catches markers that the two above refuse, so that a
	// typo fails instead of silently not running an example.
	anyMarkerRE = regexp.MustCompile(`^<!--\s*doctest`)
)

// Extract returns the marked examples of the markdown document text, in
// order. doc names the document in errors and blocks.
func Extract(doc, text string) ([]Block, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var blocks []Block
	names := map[string]int{} // name -> index in blocks
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if ticks := fenceTicks(line); ticks != "" {
			// An unmarked fence: a marker shown inside it is an example
			// of a marker (as in docs/contributing-docs.md), not one.
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != ticks; i++ {
			}
			continue
		}
		if !anyMarkerRE.MatchString(line) {
			continue
		}
		at := fmt.Sprintf("%s:%d", doc, i+1)
		fenceLang, body, end, err := fence(lines, i+1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if m := outputRE.FindStringSubmatch(line); m != nil {
			j, ok := names[m[1]]
			if !ok {
				return nil, fmt.Errorf("%s: doctest-output %q follows no doctest block of that name", at, m[1])
			}
			b := &blocks[j]
			if b.Lang != "sh" || b.Want != "" {
				return nil, fmt.Errorf("%s: doctest-output %q: only one output per sh block (a console block shows its own)", at, m[1])
			}
			b.Want, b.WantLine = body, i+3
			i = end
			continue
		}
		m := markerRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s: malformed marker %q (want <!-- doctest: NAME [key=value ...] --> or <!-- doctest-output: NAME -->)", at, line)
		}
		if _, dup := names[m[1]]; dup {
			return nil, fmt.Errorf("%s: doctest %q: the name is used twice", at, m[1])
		}
		b := Block{Doc: doc, Name: m[1], Line: i + 2, Lang: fenceLang, Nodes: 1}
		if err := b.setOptions(strings.Fields(m[2])); err != nil {
			return nil, fmt.Errorf("%s: doctest %q: %w", at, m[1], err)
		}
		switch fenceLang {
		case "sh", "bash":
			b.Lang, b.Script = "sh", body
		case "console":
			b.Commands = commands(body, i+3)
			if len(b.Commands) == 0 {
				return nil, fmt.Errorf("%s: doctest %q: a console block needs \"$ \" command lines", at, m[1])
			}
		default:
			return nil, fmt.Errorf("%s: doctest %q: the fence is %q, want sh or console", at, m[1], fenceLang)
		}
		names[b.Name] = len(blocks)
		blocks = append(blocks, b)
		i = end
	}
	return blocks, nil
}

func (b *Block) setOptions(opts []string) error {
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		var err error
		switch k {
		case "cluster":
			b.Nodes, err = strconv.Atoi(v)
			if err == nil && (b.Nodes < 1 || b.Nodes > 3) {
				err = fmt.Errorf("%d nodes, want 1 to 3", b.Nodes)
			}
		case "eventually":
			b.Eventually, err = time.ParseDuration(v)
		case "exit":
			b.Exit, err = strconv.Atoi(v)
		default:
			return fmt.Errorf("unknown option %q (cluster, eventually, exit)", k)
		}
		if err != nil {
			return fmt.Errorf("option %s: %w", o, err)
		}
	}
	return nil
}

// fenceTicks returns the backticks that open a fence on line, or "".
func fenceTicks(line string) string {
	n := len(line) - len(strings.TrimLeft(line, "`"))
	if n < 3 {
		return ""
	}
	return line[:n]
}

// fence reads the fenced block that must open at lines[at]: its language,
// its body and the index of its closing line.
func fence(lines []string, at int) (lang, body string, end int, err error) {
	if at >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[at]), "```") {
		return "", "", 0, fmt.Errorf("a doctest marker must be right before a ``` fence")
	}
	open := strings.TrimSpace(lines[at])
	indent := lines[at][:strings.Index(lines[at], "```")]
	lang = strings.TrimSpace(strings.TrimPrefix(open, "```"))
	var b strings.Builder
	for j := at + 1; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) == "```" {
			return lang, b.String(), j, nil
		}
		b.WriteString(strings.TrimPrefix(lines[j], indent))
		b.WriteByte('\n')
	}
	return "", "", 0, fmt.Errorf("the fence opened at line %d is never closed", at+1)
}

// commands splits a console block into its "$ " commands; first is the
// line number of the block's first line.
func commands(body string, first int) []Command {
	var cmds []Command
	lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "$ ") {
			if len(cmds) > 0 {
				c := &cmds[len(cmds)-1]
				c.Want += lines[i] + "\n"
			}
			continue
		}
		c := Command{Line: first + i, Text: strings.TrimPrefix(lines[i], "$ ")}
		for strings.HasSuffix(c.Text, `\`) && i+1 < len(lines) {
			i++
			c.Text += "\n" + lines[i]
		}
		cmds = append(cmds, c)
	}
	return cmds
}
