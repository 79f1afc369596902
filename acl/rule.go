package acl

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"shoal/modules"
)

// Modules a rule can name. ModuleAny ("*") stands for every one of them;
// it never stands for ModuleOperator, which only the rule "operator"
// grants.
const (
	ModuleKV      = "kv"
	ModuleLogs    = "logs"
	ModuleLocks   = "locks"
	ModuleObjects = "objects"
	ModuleFiles   = "files"
	ModuleCluster = "cluster"
	ModuleAny     = "*"
	// ModuleOperator is the module of a Resource that needs the
	// "operator" rule: node administration and ACL management.
	ModuleOperator = "operator"
)

// ruleModules are the modules a MODULE:ACTION:PATTERN rule may name.
var ruleModules = []string{ModuleKV, ModuleLogs, ModuleLocks, ModuleObjects, ModuleFiles, ModuleCluster, ModuleAny}

// Action is what a request does to a resource. The actions are ordered:
// a rule granting an action also grants every lower one (admin implies
// write, write implies read).
type Action uint8

// The actions, lowest first. The zero Action is invalid.
const (
	ActionRead  Action = 1
	ActionWrite Action = 2
	ActionAdmin Action = 3
)

// String returns "read", "write" or "admin".
func (a Action) String() string {
	switch a {
	case ActionRead:
		return "read"
	case ActionWrite:
		return "write"
	case ActionAdmin:
		return "admin"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// parseAction is the inverse of String.
func parseAction(s string) (Action, bool) {
	switch s {
	case "read":
		return ActionRead, true
	case "write":
		return ActionWrite, true
	case "admin":
		return ActionAdmin, true
	}
	return 0, false
}

// Limits of a rule.
const (
	// MaxPatternLen is the length in bytes of the longest pattern.
	MaxPatternLen = 1024
	// MaxRuleLen bounds a rule's text: module, action, pattern and colons.
	MaxRuleLen = MaxPatternLen + 32
)

// Rule is one grant of a token: either Operator (node administration and
// ACL management), or Action on the names of Module that start with
// Prefix. An empty Prefix (written "*") matches every name.
//
// Rules are values: compare them with ==.
type Rule struct {
	Operator bool
	Module   string
	Action   Action
	Prefix   string
}

// ParseRule parses a rule: "operator", or MODULE:ACTION:PATTERN where
// MODULE is kv, logs, locks, objects, files, cluster or *, ACTION is read,
// write or admin, and PATTERN is * (every name) or a literal name prefix
// without '*' ("config/" matches "config/a" and "config/b/c"; "orders"
// matches "orders" and "orders-eu"). The pattern is everything after the
// second colon, so it may itself hold colons. cluster rules take the
// pattern *, since cluster resources have no names. Errors wrap
// ErrInvalidRule and say what is wrong.
func ParseRule(s string) (Rule, error) {
	if s == "operator" {
		return Rule{Operator: true}, nil
	}
	if len(s) > MaxRuleLen {
		return Rule{}, fmt.Errorf("rule of %d bytes, more than %d: %w", len(s), MaxRuleLen, ErrInvalidRule)
	}
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return Rule{}, fmt.Errorf("rule %q: want \"operator\" or MODULE:ACTION:PATTERN (for example kv:read:config/): %w", modules.Echo(s), ErrInvalidRule)
	}
	module, action, pattern := parts[0], parts[1], parts[2]
	if !validModule(module) {
		return Rule{}, fmt.Errorf("rule %q: unknown module %q, want one of %s: %w", modules.Echo(s), modules.Echo(module), strings.Join(ruleModules, ", "), ErrInvalidRule)
	}
	a, ok := parseAction(action)
	if !ok {
		return Rule{}, fmt.Errorf("rule %q: unknown action %q, want read, write or admin: %w", modules.Echo(s), modules.Echo(action), ErrInvalidRule)
	}
	prefix, err := parsePattern(pattern)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w: %w", modules.Echo(s), err, ErrInvalidRule)
	}
	if module == ModuleCluster && prefix != "" {
		return Rule{}, fmt.Errorf("rule %q: cluster rules take the pattern *, cluster resources have no names: %w", modules.Echo(s), ErrInvalidRule)
	}
	return Rule{Module: module, Action: a, Prefix: prefix}, nil
}

// parsePattern returns the prefix a pattern stands for.
func parsePattern(p string) (string, error) {
	switch {
	case p == "*":
		return "", nil
	case p == "":
		return "", errors.New("empty pattern: write * for every name")
	case len(p) > MaxPatternLen:
		return "", fmt.Errorf("pattern of %d bytes, more than %d", len(p), MaxPatternLen)
	case !utf8.ValidString(p):
		return "", errors.New("pattern is not valid UTF-8")
	case strings.ContainsFunc(p, isControl):
		return "", errors.New("pattern holds a control character")
	case strings.HasSuffix(p, "*"):
		return "", fmt.Errorf("pattern %q: a pattern is a literal prefix, write %q", modules.Echo(p), modules.Echo(strings.TrimSuffix(p, "*")))
	case strings.Contains(p, "*"):
		return "", fmt.Errorf("pattern %q: '*' is only allowed alone", modules.Echo(p))
	}
	return p, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func validModule(m string) bool {
	for _, x := range ruleModules {
		if m == x {
			return true
		}
	}
	return false
}

// String returns the rule's canonical text, which ParseRule reads back
// as the same rule.
func (r Rule) String() string {
	if r.Operator {
		return "operator"
	}
	p := r.Prefix
	if p == "" {
		p = "*"
	}
	return r.Module + ":" + r.Action.String() + ":" + p
}

// MarshalText writes the canonical text (so JSON shows rules as strings).
func (r Rule) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses a rule with ParseRule.
func (r *Rule) UnmarshalText(b []byte) error {
	v, err := ParseRule(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Resource is what one API request touches: Action on the thing named
// Name of Module. Name is a key, a log, semaphore or lock name, an object
// id or a file path; for a list, the prefix the list is restricted to (""
// for an unrestricted list). Module is ModuleOperator for node
// administration, and ModuleCluster (with no name) for the node's status,
// members and metrics.
type Resource struct {
	Module string
	Action Action
	Name   string
}

// String is the narrowest rule that allows res: "operator", or
// MODULE:ACTION:NAME ("*" for the empty name), as an error tells a user
// what their token lacks.
func (res Resource) String() string {
	if res.Module == ModuleOperator {
		return "operator"
	}
	name := res.Name
	if name == "" {
		name = "*"
	}
	return res.Module + ":" + res.Action.String() + ":" + name
}

// Allows reports whether rule r grants res: an operator rule grants the
// operator resources and nothing else; another rule grants res when it
// names res's module (or *, which never covers operator), its action is
// at least res's, and res's name starts with its prefix. For a list with
// a prefix, the rule's prefix must cover the requested prefix: a rule
// "kv:read:config/" allows listing prefix "config/app/" but not "conf"
// nor the whole store.
func (r Rule) Allows(res Resource) bool {
	if res.Module == "" || res.Action < ActionRead || res.Action > ActionAdmin {
		return false
	}
	if res.Module == ModuleOperator {
		return r.Operator
	}
	if r.Operator {
		return false
	}
	return (r.Module == ModuleAny || r.Module == res.Module) &&
		r.Action >= res.Action &&
		strings.HasPrefix(res.Name, r.Prefix)
}
