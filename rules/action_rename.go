package rules

import "go.yaml.in/yaml/v3"

// rename: {from: to} moves the value at each from target to its to target
// (replacing what was there) and removes from. An absent from is left
// alone. Both sides are attributes[...] or resource[...], so an attribute
// can also be moved to the resource and back.
type renameAction struct {
	from, to []target
}

func decodeRename(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "rename", `want a mapping of from-target to to-target, e.g. attributes["k8s.pod.name"]: attributes["pod"]`)
		return nil
	}
	a := &renameAction{}
	ok := true
	d.eachKey(v, func(fk, tv *yaml.Node) {
		from, good1 := d.target(r.Signal, "rename", fk)
		to, good2 := d.target(r.Signal, "rename", tv)
		switch {
		case !good1 || !good2:
			ok = false
		case from.kind == targetField:
			d.errorf(fk, "rename", "%s is a field; only attributes[...] and resource[...] can be renamed", from.text)
			ok = false
		case to.kind == targetField:
			d.errorf(tv, "rename", "%s is a field; only attributes[...] and resource[...] can be renamed", to.text)
			ok = false
		case from.kind == to.kind && from.key == to.key:
			d.errorf(tv, "rename", "%s is renamed to itself", from.text)
			ok = false
		default:
			a.from = append(a.from, from)
			a.to = append(a.to, to)
		}
	})
	if !ok || len(a.from) == 0 {
		if ok {
			d.errorf(v, "rename", "nothing to rename")
		}
		return nil
	}
	return a
}

func (a *renameAction) apply(c *call) (outcome, error) {
	out := unchanged
	for i := range a.from {
		m := a.from[i].attrs(c.env)
		v, ok := m[a.from[i].key]
		if !ok {
			continue
		}
		delete(m, a.from[i].key)
		a.to[i].attrsForWrite(c.env)[a.to[i].key] = v
		out = changed
	}
	return out, nil
}
