package columnar

import "github.com/sluice-dev/sluice/rules"

// same is the reference's (ref_test.go) test of an unchanged value: the
// engine's own, rules.SameValue, so that both agree by construction on
// which entries are copied and which rewritten.
func same(a, b any) bool { return rules.SameValue(a, b) }
