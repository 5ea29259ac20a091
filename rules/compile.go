package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"go.yaml.in/yaml/v3"
)

// Deps says what a rule's condition reads. The worker uses it to evaluate
// a condition once per resource, scope or attribute set instead of once
// per item (see Keys).
type Deps struct {
	Attributes bool // attributes
	Resource   bool // resource
	Scope      bool // scope
	Item       bool // any other field of the item (name, body, trace_id, ...), or now()
}

// compiler compiles the expressions of one rule set.
type compiler struct {
	funcs  *functions
	opts   [len(otlpwire.Signals)][]expr.Option // environment and functions, per signal
	names  [len(otlpwire.Signals)][]string      // names of the environment, per signal
	fnames []string                             // every function an expression can call
}

func newCompiler() *compiler {
	c := &compiler{funcs: &functions{regexps: map[string]*regexp.Regexp{}}}
	fnOpts := c.funcs.options()
	for _, sig := range otlpwire.Signals {
		c.opts[sig] = append([]expr.Option{expr.Env(envProto(sig))}, fnOpts...)
		c.names[sig] = envNames(sig)
	}
	c.fnames = append(c.fnames, funcNames...)
	for _, b := range builtin.Builtins {
		c.fnames = append(c.fnames, b.Name)
	}
	return c
}

// exprError is a compile error at a position in the expression: line
// 1-based, col 0-based in runes, as expr reports them.
type exprError struct {
	line, col int
	msg       string
}

// exprReads names the item fields an expression reads, and whether it
// reads anything else of the item (now()).
type exprReads struct {
	fields []string
	impure bool
	// attrKeys are the attribute keys the expression reads by name
	// (attributes["k"], attributes.k); attrAll: it reads the attributes
	// some other way too (the whole map, a computed key, "k" in ...).
	attrKeys []string
	attrAll  bool
}

// compile compiles src for sig. want is the kind the result must have:
// Bool for conditions, Int, String, or Interface for any value. reads
// names the item fields src reads.
func (c *compiler) compile(sig otlpwire.Signal, src string, want reflect.Kind) (p *vm.Program, deps Deps, reads exprReads, errs []exprError) {
	opts := c.opts[sig]
	switch want {
	case reflect.Bool:
		opts = append(opts[:len(opts):len(opts)], expr.AsBool())
	case reflect.Int:
		opts = append(opts[:len(opts):len(opts)], expr.AsInt())
	case reflect.String:
		opts = append(opts[:len(opts):len(opts)], expr.AsKind(reflect.String))
	}
	p, err := compileSafe(src, opts)
	if err != nil {
		var fe *file.Error
		if !errors.As(err, &fe) {
			return nil, deps, reads, []exprError{{line: 1, msg: err.Error()}}
		}
		return nil, deps, reads, []exprError{{line: fe.Line, col: fe.Column, msg: c.explain(sig, src, fe, want)}}
	}
	w := &walker{c: c, src: src}
	node := p.Node()
	ast.Walk(&node, w)
	for name := range w.idents {
		switch name {
		case "attributes":
			deps.Attributes = true
		case "resource":
			deps.Resource = true
		case "scope":
			deps.Scope = true
		default:
			for _, n := range c.names[sig] {
				if n == name {
					deps.Item = true
					reads.fields = append(reads.fields, name)
				}
			}
		}
	}
	// A condition calling top_k is not memoised by Keys: each call counts.
	deps.Item = deps.Item || w.impure || w.stateful
	reads.impure = w.impure
	reads.attrKeys = w.attrKeys
	reads.attrAll = w.attrIdents != w.attrKeyed
	return p, deps, reads, w.errs
}

func compileSafe(src string, opts []expr.Option) (p *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return expr.Compile(src, opts...)
}

// explain turns expr's message into one that says what to do.
func (c *compiler) explain(sig otlpwire.Signal, src string, fe *file.Error, want reflect.Kind) string {
	msg := fe.Message
	name, ok := strings.CutPrefix(msg, "unknown name ")
	if !ok {
		return msg
	}
	rs := []rune(src)
	after := string(rs[min(len(rs), fe.From+utf8.RuneCountInString(name)):])
	if strings.HasPrefix(strings.TrimLeft(after, " \t"), "(") {
		msg = "unknown function " + name
		if m := suggest(name, c.fnames); m != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", m)
		}
		return msg
	}
	if m := suggest(name, c.names[sig]); m != "" {
		return msg + fmt.Sprintf(" (did you mean %s?)", m)
	}
	if strings.TrimSpace(src) == name && want != reflect.Bool {
		return msg + fmt.Sprintf(` (%s has no such field; to write a string, quote it: '"%s"')`, sig, name)
	}
	return msg + fmt.Sprintf(" (%s items have: %s)", sig, strings.Join(c.names[sig], ", "))
}

// walker collects the names an expression reads and checks the regular
// expressions it uses, compiling them for the set, and the literal
// arguments of bucket and top_k, preparing their call sites.
type walker struct {
	c        *compiler
	src      string
	idents   map[string]bool
	impure   bool
	stateful bool // calls top_k
	errs     []exprError
	// attrIdents counts the uses of the name attributes, attrKeyed those
	// that index it with a constant key, attrKeys those keys.
	attrIdents, attrKeyed int
	attrKeys              []string
}

func (w *walker) Visit(n *ast.Node) {
	switch n := (*n).(type) {
	case *ast.IdentifierNode:
		if w.idents == nil {
			w.idents = map[string]bool{}
		}
		w.idents[n.Value] = true
		if n.Value == "attributes" {
			w.attrIdents++
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "attributes" && !n.Method {
			if k, ok := constString(n.Property); ok {
				w.attrKeyed++
				if !slices.Contains(w.attrKeys, k) {
					w.attrKeys = append(w.attrKeys, k)
				}
			}
		}
	case *ast.BuiltinNode:
		if n.Name == "now" {
			w.impure = true
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		switch id.Value {
		case "bucket":
			w.checkBucket(n)
			return
		case "top_k":
			w.checkTopK(n)
			return
		}
		arg, ok := regexFuncs[id.Value]
		if !ok || arg >= len(n.Arguments) {
			return
		}
		lit, ok := n.Arguments[arg].(*ast.StringNode)
		if !ok {
			w.errorAt(n.Arguments[arg], fmt.Sprintf("%s: the pattern must be a string literal, so it is compiled once when the rules load", id.Value))
			return
		}
		if err := w.c.funcs.addRegexp(lit.Value); err != nil {
			w.errorAt(lit, fmt.Sprintf("%s: bad regular expression %q: %s", id.Value, lit.Value, regexpReason(err)))
		}
	}
}

// constString returns the value of a string literal (or constant).
func constString(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.ConstantNode:
		s, ok := n.Value.(string)
		return s, ok
	}
	return "", false
}

func (w *walker) errorAt(n ast.Node, msg string) {
	line, col := 1, 0
	i := 0
	for _, r := range w.src {
		if i == n.Location().From {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
		i++
	}
	w.errs = append(w.errs, exprError{line: line, col: col, msg: msg})
}

func regexpReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "error parsing regexp") && i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// exprPos maps a position in the expression held by scalar n (line 1-based,
// col 0-based) to a line and column of the YAML file. It is exact for
// one-line expressions and literal blocks (|), and falls back to the start
// of the scalar for folded ones.
func exprPos(n *yaml.Node, lines []string, line, col int) (int, int) {
	switch n.Style {
	case 0, yaml.TaggedStyle, yaml.FlowStyle:
		if !strings.Contains(n.Value, "\n") && line == 1 && isOneLine(n, lines) {
			return n.Line, n.Column + col
		}
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if line == 1 && isOneLine(n, lines) {
			return n.Line, n.Column + 1 + col
		}
	case yaml.LiteralStyle:
		l := n.Line + line
		if l-1 < len(lines) {
			return l, blockIndent(n, lines) + col + 1
		}
	}
	return n.Line, n.Column
}

// isOneLine reports whether scalar n ends on the line it starts on.
func isOneLine(n *yaml.Node, lines []string) bool {
	if n.Line-1 >= len(lines) {
		return false
	}
	rest := lines[n.Line-1]
	start := 0
	for i := range n.Column - 1 { // Column counts runes
		_ = i
		_, size := utf8.DecodeRuneInString(rest[start:])
		start += size
	}
	v := n.Value
	if n.Style == 0 {
		return strings.HasPrefix(rest[start:], v)
	}
	// Quoted: the closing quote must be on this line; escapes make the
	// text differ, so only check that the line is long enough.
	return len(rest)-start >= len(v)+2
}

// blockIndent is the indentation of the content of literal block n.
func blockIndent(n *yaml.Node, lines []string) int {
	for l := n.Line; l < len(lines); l++ { // lines[n.Line] is the line after the indicator
		s := lines[l]
		if strings.TrimSpace(s) == "" {
			continue
		}
		return len(s) - len(strings.TrimLeft(s, " "))
	}
	return 0
}
