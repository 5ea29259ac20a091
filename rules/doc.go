// Package rules is sluice's rule language: YAML files kept in git whose
// conditions and values are expr-lang expressions, loaded, checked and
// compiled once, then applied to every telemetry item a worker handles.
//
// Data enters as files (Load, LoadFS, Parse) and leaves as a *Set of
// compiled rules. A worker fills one Env per item (MetricEnv, LogEnv or
// SpanEnv: the row of an Arrow batch it is looking at) and calls
// (*Evaluator).Apply, which runs that signal's rules in order and mutates
// the Env in place: attribute and resource maps are edited, settable fields
// are assigned. The caller owns the Env and its maps; Apply never retains
// them, so the worker may reuse both for the next row and write the result
// back to its Arrow builders.
//
// A Set is immutable after loading and safe for concurrent use. An
// Evaluator is not: make one per goroutine. The rule language is described
// for users in README.md in this directory.
package rules
