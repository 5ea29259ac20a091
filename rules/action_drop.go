package rules

import "go.yaml.in/yaml/v3"

// drop: true drops the items the rule matches.
type dropAction struct{}

func decodeDrop(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if b, ok := d.decodeBool("drop", v); ok && b {
		return dropAction{}
	}
	return nil
}

func (dropAction) apply(*call) (outcome, error) { return dropped, nil }
