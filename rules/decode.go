package rules

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/vm"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"go.yaml.in/yaml/v3"
)

// fileDecoder reads the rules of one file from its YAML nodes, so that
// every error carries a line and column, and collects all errors.
type fileDecoder struct {
	name  string   // file name as shown in errors
	lines []string // the file's lines, to place errors inside expressions
	c     *compiler
	errs  Errors
	rule  *Rule // the rule being read, for error labels
	ruleN int   // its 1-based position in the file
}

// ruleKeys are the keys of a rule that are not actions.
var ruleKeys = []string{"name", "signal", "when", "on_error"}

func (d *fileDecoder) errorf(n *yaml.Node, key, format string, args ...any) {
	e := &Error{File: d.name, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	if d.rule != nil {
		e.Rule = d.rule.Name
		if e.Rule == "" {
			e.Rule = "#" + strconv.Itoa(d.ruleN)
		}
	}
	d.errs = append(d.errs, e)
}

func (d *fileDecoder) decode(data []byte) []*Rule {
	d.lines = strings.Split(string(data), "\n")
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.yamlError(err)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		d.errorf(top, "", "a rule file is a mapping with the key rules")
		return nil
	}
	var list *yaml.Node
	var merge *MergeSpec
	var noMerge bool
	d.eachKey(top, func(k, v *yaml.Node) {
		switch k.Value {
		case "rules":
			list = v
		case "merge":
			merge, noMerge = d.decodeMerge(v)
		default:
			d.errorf(k, "", "unknown key %q (valid: rules, merge)", k.Value)
		}
	})
	if list == nil || list.Tag == "!!null" {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		d.errorf(list, "rules", "want a list of rules")
		return nil
	}
	var out []*Rule
	for i, n := range list.Content {
		d.ruleN = i + 1
		if r := d.decodeRule(resolve(n)); r != nil {
			if r.Signal == otlpwire.Metrics {
				r.fileMerge, r.noMerge = merge, noMerge
			}
			out = append(out, r)
		}
		d.rule = nil
	}
	return out
}

// sortErrors puts the file's errors in the order of their positions.
func (d *fileDecoder) sortErrors() {
	slices.SortStableFunc(d.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// yamlError locates a YAML syntax error ("yaml: line 3: ...").
func (d *fileDecoder) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: d.name, Msg: msg}
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		e.Line = line
		e.Msg = strings.TrimSpace(msg[strings.IndexByte(msg, ':')+1:])
	}
	d.errs = append(d.errs, e)
}

// eachKey calls fn for each key of mapping n, reporting repeated keys.
func (d *fileDecoder) eachKey(n *yaml.Node, fn func(k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if line, ok := seen[k.Value]; ok {
			d.errorf(k, "", "key %q repeated (first at line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v)
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func (d *fileDecoder) decodeRule(n *yaml.Node) *Rule {
	r := &Rule{File: d.name, Line: n.Line}
	d.rule = r
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "a rule is a mapping with the keys name, signal, when and actions")
		return nil
	}
	// Read the name first so every error names the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], resolve(n.Content[i+1]); k.Value == "name" && v.Kind == yaml.ScalarNode {
			r.Name = strings.TrimSpace(v.Value)
			r.Line, r.col = k.Line, k.Column
			break
		}
	}
	var (
		acts                           []pendingAction
		whenNode                       *yaml.Node
		haveName, haveSignal, signalOK bool
	)
	d.eachKey(n, func(k, v *yaml.Node) {
		switch k.Value {
		case "name":
			haveName = true
			if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || strings.TrimSpace(v.Value) == "" {
				d.errorf(v, "name", "want a non-empty string")
			}
		case "signal":
			haveSignal = true
			s, err := otlpwire.ParseSignal(scalar(v))
			if err != nil {
				d.errorf(v, "signal", "%v", err)
				return
			}
			r.Signal, signalOK = s, true
		case "when":
			whenNode = v
		case "on_error":
			switch scalar(v) {
			case "skip":
				r.OnError = OnErrorSkip
			case "drop":
				r.OnError = OnErrorDrop
			default:
				d.errorf(v, "on_error", "want skip or drop, not %q", scalar(v))
			}
		default:
			kind := lookupAction(k.Value)
			if kind == nil {
				hint := ""
				if m := suggest(k.Value, validRuleKeys()); m != "" {
					hint = fmt.Sprintf("did you mean %s? ", m)
				}
				d.errorf(k, "", "unknown key %q (%svalid: %s)", k.Value, hint, strings.Join(validRuleKeys(), ", "))
				return
			}
			acts = append(acts, pendingAction{kind, k, v})
		}
	})
	if !haveName {
		d.errorf(n, "", "missing name")
	}
	if !haveSignal {
		d.errorf(n, "", "missing signal (metrics, logs or traces)")
	}
	if !signalOK {
		return nil // expressions and targets cannot be checked without a signal
	}
	if whenNode != nil {
		r.When = whenNode.Value
		r.when, r.deps = d.compile(r.Signal, "when", whenNode, reflect.Bool)
	}
	slices.SortStableFunc(acts, func(a, b pendingAction) int { return a.kind.order - b.kind.order })
	for _, a := range acts {
		if act := a.kind.decode(d, r, a.k, a.v); act != nil {
			r.actions = append(r.actions, act)
		}
	}
	d.validate(r, n, acts)
	return r
}

type pendingAction struct {
	kind *actionKind
	k, v *yaml.Node
}

// validate checks what spans the keys of a rule.
func (d *fileDecoder) validate(r *Rule, n *yaml.Node, acts []pendingAction) {
	if len(r.actions) == 0 && !r.dropUnmatched {
		if len(acts) == 0 { // else an action was given but did not decode, already reported
			d.errorf(n, "", "no action (give one of: %s)", strings.Join(actionKeys(), ", "))
		}
		return
	}
	for _, a := range acts {
		switch {
		case a.kind.key == "drop" && isTrue(a.v) && (len(acts) > 1 || r.dropUnmatched):
			d.errorf(a.k, "drop", "cannot be combined with other actions (drop: true drops every matching item)")
		case a.kind.key == "keep" && r.dropUnmatched && r.when == nil && r.When == "":
			d.errorf(a.k, "keep", "needs a when condition (keep: true drops the items that do not match it)")
		}
	}
}

func isTrue(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!bool" && n.Value == "true"
}

// compile compiles the expression in scalar n and reports its errors at
// their place in the file.
func (d *fileDecoder) compile(sig otlpwire.Signal, key string, n *yaml.Node, want reflect.Kind) (*vm.Program, Deps) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		d.errorf(n, key, "want an expression")
		return nil, Deps{}
	}
	p, deps, reads, errs := d.c.compile(sig, n.Value, want)
	if d.rule != nil {
		d.rule.addFieldReads(reads)
	}
	for _, e := range errs {
		line, col := exprPos(n, d.lines, e.line, e.col)
		d.errorf(&yaml.Node{Line: line, Column: col}, key, "%s", e.msg)
	}
	if len(errs) > 0 {
		return nil, deps
	}
	return p, deps
}

// target parses the target written in scalar n.
func (d *fileDecoder) target(sig otlpwire.Signal, key string, n *yaml.Node) (target, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, key, `want a target: attributes["key"], resource["key"] or a field name`)
		return target{}, false
	}
	t, err := parseTarget(sig, n.Value)
	if err != nil {
		pos := *n
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			pos.Column++
		}
		d.errorf(&pos, key, "%s", err)
		return t, false
	}
	return t, true
}

// scalar returns the text of a scalar node, or "" for anything else.
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
