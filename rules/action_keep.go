package rules

import "go.yaml.in/yaml/v3"

// keep: true drops the items of the rule's signal that its condition does
// not match. It acts on the items that do not match, so it is a flag of
// the rule that Apply reads, not an action on matching items.
func decodeKeep(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if b, ok := d.decodeBool("keep", v); ok && b {
		r.dropUnmatched = true
	}
	return nil
}
