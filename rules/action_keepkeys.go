package rules

import (
	"go.yaml.in/yaml/v3"
)

// keep_keys: {attributes: [keys], resource: [keys]} removes every
// attribute (and resource attribute) whose key is not listed. A map that
// is not mentioned is left alone; an empty list removes all its keys.
type keepKeysAction struct {
	attributes, resource map[string]struct{} // nil: leave the map alone
}

func decodeKeepKeys(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "keep_keys", `want a mapping, e.g. {attributes: ["http.method", "http.route"]}`)
		return nil
	}
	a := &keepKeysAction{}
	ok := true
	d.eachKey(v, func(mk, list *yaml.Node) {
		var dst *map[string]struct{}
		switch mk.Value {
		case "attributes":
			dst = &a.attributes
		case "resource":
			dst = &a.resource
		default:
			d.errorf(mk, "keep_keys", "unknown key %q (valid: attributes, resource)", mk.Value)
			ok = false
			return
		}
		if list.Kind != yaml.SequenceNode {
			d.errorf(list, "keep_keys", "want a list of keys, e.g. [\"http.method\", \"http.route\"]")
			ok = false
			return
		}
		*dst = make(map[string]struct{}, len(list.Content))
		for _, n := range list.Content {
			n = resolve(n)
			if n.Kind != yaml.ScalarNode || n.Value == "" {
				d.errorf(n, "keep_keys", "want a key (a string)")
				ok = false
				continue
			}
			(*dst)[n.Value] = struct{}{}
		}
	})
	if !ok {
		return nil
	}
	if a.attributes == nil && a.resource == nil {
		d.errorf(v, "keep_keys", "give the keys to keep for attributes, resource or both")
		return nil
	}
	return a
}

func (a *keepKeysAction) apply(c *call) (outcome, error) {
	out := unchanged
	cm := c.env.common()
	if a.attributes != nil && retain(cm.Attributes, a.attributes) {
		out = changed
	}
	if a.resource != nil && retain(cm.Resource, a.resource) {
		out = changed
	}
	return out, nil
}

func retain(m map[string]any, keep map[string]struct{}) bool {
	removed := false
	for k := range m {
		if _, ok := keep[k]; !ok {
			delete(m, k)
			removed = true
		}
	}
	return removed
}
