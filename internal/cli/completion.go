package cli

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// describeArg, given as the only argument, makes a command describe itself
// on stdout instead of running: a group lists its subcommands ("sub NAME\t
// SUMMARY"), a command its flags ("flag NAME\tVALUE\tUSAGE", VALUE 1 when
// the flag takes a value) and the words its argument may be ("word W").
// The completion command builds its scripts from these descriptions, so
// the scripts follow the command table and the flag sets themselves.
const describeArg = "__shoal_describe"

// describeFlags writes the "flag" lines of fs to w.
func describeFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		value := 1
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			value = 0
		}
		_, usage := flag.UnquoteUsage(f)
		usage, _, _ = strings.Cut(usage, "\n")
		fmt.Fprintf(w, "flag %s\t%d\t%s\n", f.Name, value, usage)
	})
}

// compNode is one command of the completion tree.
type compNode struct {
	name, summary string
	path          string // "kv put"; "" for the root
	flags         []compFlag
	words         []string
	subs          []*compNode
}

type compFlag struct {
	name, usage string
	value       bool
}

// spelling is how the flag is written: -o, --addr.
func (f compFlag) spelling() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

// completionTree describes every command and subcommand, in name order.
func completionTree(ctx context.Context) *compNode {
	root := &compNode{words: []string{"help"}}
	for _, c := range commands() {
		n := &compNode{name: c.name, summary: c.summary, path: c.name}
		if !c.opaque {
			describeNode(ctx, n, func(args []string, stdout io.Writer) { c.run(ctx, args, stdout, io.Discard) }, nil)
		}
		root.subs = append(root.subs, n)
	}
	return root
}

// describeNode fills n from the description run prints with prefix and
// describeArg as arguments, and recurses into its subcommands.
func describeNode(ctx context.Context, n *compNode, run func(args []string, stdout io.Writer), prefix []string) {
	var out bytes.Buffer
	run(append(slices.Clone(prefix), describeArg), &out)
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		fields := strings.Split(rest, "\t")
		switch kind {
		case "sub":
			sub := &compNode{name: fields[0], path: n.path + " " + fields[0]}
			if len(fields) > 1 {
				sub.summary = fields[1]
			}
			describeNode(ctx, sub, run, append(slices.Clone(prefix), fields[0]))
			n.subs = append(n.subs, sub)
		case "flag":
			if len(fields) < 3 {
				continue
			}
			n.flags = append(n.flags, compFlag{name: fields[0], value: fields[1] == "1", usage: fields[2]})
		case "word":
			n.words = append(n.words, rest)
		}
		// anything else: a registered command that does not describe itself
	}
}

// walk calls fn for n and every node under it, parents first.
func (n *compNode) walk(fn func(*compNode)) {
	fn(n)
	for _, s := range n.subs {
		s.walk(fn)
	}
}

// candidates returns what may follow n: its subcommands and words.
func (n *compNode) candidates() []string {
	var out []string
	for _, s := range n.subs {
		out = append(out, s.name)
	}
	return append(out, n.words...)
}

func (n *compNode) flagSpellings(valueOnly bool) []string {
	var out []string
	for _, f := range n.flags {
		if !valueOnly || f.value {
			out = append(out, f.spelling())
		}
	}
	return out
}

func runCompletion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("completion", "bash|zsh|fish", "Print a completion script for the shell, built from this binary's own\n"+
		"commands and flags. Load it with:\n"+
		"  bash:  source <(shoal completion bash)     (or save it in /etc/bash_completion.d/shoal)\n"+
		"  zsh:   source <(shoal completion zsh)      (after compinit; or save it as _shoal in $fpath)\n"+
		"  fish:  shoal completion fish | source      (or save it in ~/.config/fish/completions/shoal.fish)", stdout, stderr)
	if len(args) == 1 && args[0] == describeArg {
		fmt.Fprint(stdout, "word bash\nword zsh\nword fish\n")
	}
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usageError("exactly one shell is required: bash, zsh or fish")
	}
	tree := completionTree(ctx)
	var script string
	switch pos[0] {
	case "bash":
		script = bashCompletion(tree)
	case "zsh":
		script = zshCompletion(tree)
	case "fish":
		script = fishCompletion(tree)
	default:
		return c.usageError("unknown shell %q: want bash, zsh or fish", pos[0])
	}
	if _, err := io.WriteString(stdout, script); err != nil {
		return c.fail(fmt.Errorf("write output: %w", err))
	}
	return exitOK
}

// shellQuote quotes s for bash, zsh and fish alike: in single quotes,
// with each single quote inside closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pathCase returns the case pattern that matches every command path of
// tree: "kv"|"kv put"|...
func pathCase(tree *compNode) string {
	var pats []string
	tree.walk(func(n *compNode) {
		if n.path != "" {
			pats = append(pats, shellQuote(n.path))
		}
	})
	return strings.Join(pats, "|")
}

// bashCompletion is the bash script: it finds the command path among the
// words typed so far (the words that are not flags and extend a known
// path), then offers the path's subcommands, or its flags after a dash;
// after a flag that takes a value, and where nothing else fits, files.
func bashCompletion(tree *compNode) string {
	var b strings.Builder
	b.WriteString("# bash completion for shoal, generated by 'shoal completion bash'.\n")
	b.WriteString("_shoal() {\n")
	b.WriteString("    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" cmdpath=\"\" w i\n")
	b.WriteString("    for ((i = 1; i < COMP_CWORD; i++)); do\n")
	b.WriteString("        w=\"${COMP_WORDS[i]}\"\n")
	b.WriteString("        [[ \"$w\" == -* ]] && continue\n")
	b.WriteString("        case \"${cmdpath:+$cmdpath }$w\" in\n")
	fmt.Fprintf(&b, "            %s) cmdpath=\"${cmdpath:+$cmdpath }$w\" ;;\n", pathCase(tree))
	b.WriteString("        esac\n")
	b.WriteString("    done\n")
	b.WriteString("    local words=\"\" flags=\"\" vflags=\"\"\n")
	b.WriteString("    case \"$cmdpath\" in\n")
	tree.walk(func(n *compNode) {
		fmt.Fprintf(&b, "        %s) words=%s; flags=%s; vflags=%s ;;\n", shellQuote(n.path),
			shellQuote(strings.Join(n.candidates(), " ")), shellQuote(strings.Join(n.flagSpellings(false), " ")),
			shellQuote(strings.Join(n.flagSpellings(true), " ")))
	})
	b.WriteString("    esac\n")
	b.WriteString("    if [[ \"$prev\" == -o ]]; then\n")
	b.WriteString("        COMPREPLY=($(compgen -W 'table json' -- \"$cur\"))\n")
	b.WriteString("        return\n")
	b.WriteString("    fi\n")
	b.WriteString("    if [[ \"$prev\" == -* && \" $vflags \" == *\" $prev \"* ]]; then\n")
	b.WriteString("        return # a flag's value: files, by -o default\n")
	b.WriteString("    fi\n")
	b.WriteString("    if [[ \"$cur\" == -* ]]; then\n")
	b.WriteString("        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n")
	b.WriteString("    elif [[ -n \"$words\" ]]; then\n")
	b.WriteString("        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n")
	b.WriteString("    fi\n")
	b.WriteString("}\n")
	b.WriteString("complete -o default -F _shoal shoal\n")
	return b.String()
}

// zshCompletion is the zsh script, the same logic as bash's with compadd.
// It works sourced after compinit, or saved as _shoal in $fpath.
func zshCompletion(tree *compNode) string {
	var b strings.Builder
	b.WriteString("#compdef shoal\n")
	b.WriteString("# zsh completion for shoal, generated by 'shoal completion zsh'.\n")
	b.WriteString("_shoal() {\n")
	b.WriteString("    local cur=\"${words[CURRENT]}\" prev=\"${words[CURRENT-1]}\" cmdpath=\"\" w i\n")
	b.WriteString("    for ((i = 2; i < CURRENT; i++)); do\n")
	b.WriteString("        w=\"${words[i]}\"\n")
	b.WriteString("        [[ \"$w\" == -* ]] && continue\n")
	b.WriteString("        case \"${cmdpath:+$cmdpath }$w\" in\n")
	fmt.Fprintf(&b, "            %s) cmdpath=\"${cmdpath:+$cmdpath }$w\" ;;\n", pathCase(tree))
	b.WriteString("        esac\n")
	b.WriteString("    done\n")
	b.WriteString("    local -a subs flags vflags\n")
	b.WriteString("    case \"$cmdpath\" in\n")
	tree.walk(func(n *compNode) {
		fmt.Fprintf(&b, "        %s) subs=(%s); flags=(%s); vflags=(%s) ;;\n", shellQuote(n.path),
			quoteAll(n.candidates()), quoteAll(n.flagSpellings(false)), quoteAll(n.flagSpellings(true)))
	})
	b.WriteString("    esac\n")
	b.WriteString("    if [[ \"$prev\" == -o ]]; then\n")
	b.WriteString("        compadd -- table json\n")
	b.WriteString("    elif (( ${vflags[(Ie)$prev]} )); then\n")
	b.WriteString("        _files\n")
	b.WriteString("    elif [[ \"$cur\" == -* ]]; then\n")
	b.WriteString("        compadd -- \"${flags[@]}\"\n")
	b.WriteString("    elif (( ${#subs} )); then\n")
	b.WriteString("        compadd -- \"${subs[@]}\"\n")
	b.WriteString("    else\n")
	b.WriteString("        _files\n")
	b.WriteString("    fi\n")
	b.WriteString("}\n")
	b.WriteString("if [[ \"${funcstack[1]}\" == _shoal ]]; then\n")
	b.WriteString("    _shoal \"$@\"\n")
	b.WriteString("else\n")
	b.WriteString("    compdef _shoal shoal\n")
	b.WriteString("fi\n")
	return b.String()
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = shellQuote(s)
	}
	return strings.Join(q, " ")
}

// fishCompletion is the fish script: __shoal_path finds the command path
// as the bash script does ("shoal kv put"), and each command's
// subcommands and flags are offered under the condition that it is the
// path.
func fishCompletion(tree *compNode) string {
	var b strings.Builder
	b.WriteString("# fish completion for shoal, generated by 'shoal completion fish'.\n")
	var paths []string
	tree.walk(func(n *compNode) {
		if n.path != "" {
			paths = append(paths, shellQuote("shoal "+n.path))
		}
	})
	fmt.Fprintf(&b, "set -g __shoal_paths %s\n", strings.Join(paths, " "))
	b.WriteString("function __shoal_path\n")
	b.WriteString("    set -l p shoal\n")
	b.WriteString("    for w in (commandline -opc)[2..-1]\n")
	b.WriteString("        string match -q -- '-*' $w; and continue\n")
	b.WriteString("        if contains -- \"$p $w\" $__shoal_paths\n")
	b.WriteString("            set p \"$p $w\"\n")
	b.WriteString("        end\n")
	b.WriteString("    end\n")
	b.WriteString("    echo $p\n")
	b.WriteString("end\n")
	b.WriteString("function __shoal_is\n")
	b.WriteString("    test (__shoal_path) = $argv[1]\n")
	b.WriteString("end\n")
	tree.walk(func(n *compNode) {
		cond := `"__shoal_is '` + strings.TrimSpace("shoal "+n.path) + `'"`
		for _, s := range n.subs {
			fmt.Fprintf(&b, "complete -c shoal -n %s -f -a %s -d %s\n", cond, shellQuote(s.name), shellQuote(s.summary))
		}
		for _, w := range n.words {
			fmt.Fprintf(&b, "complete -c shoal -n %s -f -a %s\n", cond, shellQuote(w))
		}
		for _, f := range n.flags {
			opt := "-l " + f.name
			if len(f.name) == 1 {
				opt = "-s " + f.name
			}
			if f.value {
				opt += " -r"
			}
			if f.name == "o" {
				opt += " -f -a 'table json'"
			}
			fmt.Fprintf(&b, "complete -c shoal -n %s %s -d %s\n", cond, opt, shellQuote(f.usage))
		}
	})
	return b.String()
}
