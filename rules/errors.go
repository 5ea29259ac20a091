package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/file"
)

// Error is one problem in a rule file, located at a line and column (1-based;
// Column is 0 when only the line is known). Its text reads
// "file:line:col: rule "name": key: message", the style of sluice's config
// errors.
type Error struct {
	File   string
	Line   int
	Column int
	Rule   string // the rule's name, or "#N" (1-based position in the file) when it has none
	Key    string // where in the rule, e.g. "when" or `set attributes["x"]`
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, "%d:", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Rule != "" {
		if strings.HasPrefix(e.Rule, "#") {
			fmt.Fprintf(&b, "rule %s: ", e.Rule)
		} else {
			fmt.Fprintf(&b, "rule %q: ", e.Rule)
		}
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found while loading a rule set, in file order.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// EvalError is a rule that failed on an item: an expression that did not
// evaluate (a missing attribute used in arithmetic, a function given the
// wrong type) or a value of the wrong type for its target.
type EvalError struct {
	Rule *Rule
	Key  string // "when" or the set target
	Err  error
}

func (e *EvalError) Error() string {
	msg := e.Err.Error()
	var fe *file.Error
	if errors.As(e.Err, &fe) {
		msg = fe.Message // without the multi-line source snippet
	}
	return fmt.Sprintf("rule %q: %s: %s", e.Rule.Name, e.Key, msg)
}

func (e *EvalError) Unwrap() error { return e.Err }
