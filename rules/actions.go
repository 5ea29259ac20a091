package rules

import (
	"strconv"

	"go.yaml.in/yaml/v3"
)

// action is one thing a rule does to the items its condition matches.
// Actions of a rule run in the order of actionKinds, whatever their order
// in the file.
type action interface {
	apply(c *call) (outcome, error)
}

type outcome uint8

const (
	unchanged outcome = iota
	changed
	dropped
)

// actionKind is an action key of a rule and how to read it. decode reports
// its errors on d and returns nil when there is nothing to do.
type actionKind struct {
	key    string
	order  int
	decode func(d *fileDecoder, r *Rule, k, v *yaml.Node) action
}

// actionKinds lists every action, in the order they run: first those that
// decide whether the item survives, then those that edit it.
var actionKinds = []actionKind{
	{"sample", 0, decodeSample},
	{"drop", 1, decodeDrop},
	{"keep", 2, decodeKeep},
	{"set", 3, decodeSet},
	{"rename", 4, decodeRename},
	{"delete", 5, decodeDelete},
	{"keep_keys", 6, decodeKeepKeys},
	{"aggregate", 7, decodeAggregate},
	{"limit", 8, decodeLimit},
}

func lookupAction(key string) *actionKind {
	for i := range actionKinds {
		if actionKinds[i].key == key {
			return &actionKinds[i]
		}
	}
	return nil
}

func actionKeys() []string {
	var out []string
	for _, k := range actionKinds {
		out = append(out, k.key)
	}
	return out
}

func validRuleKeys() []string {
	return append(append([]string(nil), ruleKeys...), actionKeys()...)
}

// decodeBool reads true or false.
func (d *fileDecoder) decodeBool(key string, v *yaml.Node) (bool, bool) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
		b, err := strconv.ParseBool(v.Value)
		if err == nil {
			return b, true
		}
		return v.Value == "true" || v.Value == "True" || v.Value == "TRUE", true
	}
	d.errorf(v, key, "want true or false, not %q", scalar(v))
	return false, false
}

// decodeTargetList reads a list of attribute targets.
func (d *fileDecoder) decodeTargetList(r *Rule, key string, v *yaml.Node) []target {
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, key, `want a list of targets, e.g. ['attributes["user.id"]']`)
		return nil
	}
	var out []target
	for _, n := range v.Content {
		t, ok := d.target(r.Signal, key, resolve(n))
		if !ok {
			continue
		}
		if t.kind == targetField {
			d.errorf(n, key, "%s is a field and cannot be removed; set it instead", t.text)
			continue
		}
		out = append(out, t)
	}
	return out
}
