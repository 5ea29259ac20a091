package rules

import "go.yaml.in/yaml/v3"

// delete: [targets] removes attributes and resource attributes.
type deleteAction struct {
	targets []target
}

func decodeDelete(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	ts := d.decodeTargetList(r, "delete", v)
	if len(ts) == 0 {
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			d.errorf(v, "delete", "nothing to delete")
		}
		return nil
	}
	return &deleteAction{targets: ts}
}

func (a *deleteAction) apply(c *call) (outcome, error) {
	out := unchanged
	for i := range a.targets {
		t := &a.targets[i]
		m := t.attrs(c.env)
		if _, ok := m[t.key]; ok {
			delete(m, t.key)
			out = changed
		}
	}
	return out, nil
}
