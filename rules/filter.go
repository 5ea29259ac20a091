package rules

import (
	"errors"
	"reflect"
	"strings"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// FilterRule is the name of the rule of a Filter set.
const FilterRule = "filter"

// Filter compiles cond, a bool expression over the items of sig, into a
// set of one rule that keeps the items it matches and drops the others,
// also those it fails on: a condition given on a command line (sluice tap
// --filter), compiled and evaluated exactly as a rule's when, with the same
// names and functions. Errors are Errors placed in cond itself: File is
// source, Line and Column count from cond's first character (1-based).
func Filter(sig otlpwire.Signal, source, cond string) (*Set, error) {
	if !sig.Valid() {
		return nil, errors.New("rules: filter: invalid signal")
	}
	if strings.TrimSpace(cond) == "" {
		return nil, Errors{{File: source, Msg: "want an expression"}}
	}
	c := newCompiler()
	p, deps, reads, errs := c.compile(sig, cond, reflect.Bool)
	if len(errs) > 0 {
		out := make(Errors, len(errs))
		for i, e := range errs {
			out[i] = &Error{File: source, Line: e.line, Column: e.col + 1, Msg: e.msg}
		}
		return nil, out
	}
	r := &Rule{Name: FilterRule, Signal: sig, File: source, Line: 1, When: cond, OnError: OnErrorDrop,
		when: p, deps: deps, dropUnmatched: true}
	r.addFieldReads(reads)
	s := &Set{version: "filter", all: []*Rule{r}}
	s.bySignal[sig] = s.all
	s.pool.New = func() any { return s.NewEvaluator() }
	return s, nil
}
