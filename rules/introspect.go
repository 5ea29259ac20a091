package rules

import (
	"slices"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

func (d Deps) or(o Deps) Deps {
	return Deps{
		Attributes: d.Attributes || o.Attributes,
		Resource:   d.Resource || o.Resource,
		Scope:      d.Scope || o.Scope,
		Item:       d.Item || o.Item,
	}
}

func (d *Deps) addTarget(t *target) {
	switch t.kind {
	case targetAttribute:
		d.Attributes = true
	case targetResource:
		d.Resource = true
	default:
		d.Item = true
	}
}

// Reads reports everything the rule may read of an item: its condition
// (DependsOn), the values of its set action, the maps its rename, delete,
// set and keep_keys targets address, and what sample hashes (Item; for
// metrics also the attributes and the resource). With Item false, the
// rule's outcome on an item depends only on the parts it names.
func (r *Rule) Reads() Deps {
	d := r.deps
	for _, a := range r.actions {
		switch a := a.(type) {
		case *setAction:
			d = d.or(a.reads)
			for i := range a.targets {
				if a.targets[i].kind != targetField {
					d.addTarget(&a.targets[i]) // set compares with the old value
				}
			}
		case *renameAction:
			for i := range a.from {
				d.addTarget(&a.from[i])
				d.addTarget(&a.to[i])
			}
		case *deleteAction:
			for i := range a.targets {
				d.addTarget(&a.targets[i])
			}
		case *keepKeysAction:
			d.Attributes = d.Attributes || a.attributes != nil
			d.Resource = d.Resource || a.resource != nil
		case *aggregateAction:
			d.Attributes = d.Attributes || a.without != nil || a.by != nil
			d.Resource = d.Resource || a.without != nil || a.by != nil
		case limitAction:
		case *sampleAction:
			d.Item = true
			if r.Signal == otlpwire.Metrics {
				d.Attributes, d.Resource = true, true
			}
		case dropAction:
		default:
			return Deps{Attributes: true, Resource: true, Scope: true, Item: true}
		}
	}
	return d
}

// Writes reports what the rule's actions may change: Attributes,
// Resource, or Item for the fields set assigns (name, body, ...). Scope is
// never written. Dropping an item (drop, keep, sample, on_error: drop) is
// not a write.
func (r *Rule) Writes() Deps {
	var d Deps
	for _, a := range r.actions {
		switch a := a.(type) {
		case *setAction:
			for i := range a.targets {
				d.addTarget(&a.targets[i])
			}
		case *renameAction:
			for i := range a.from {
				d.addTarget(&a.from[i])
				d.addTarget(&a.to[i])
			}
		case *deleteAction:
			for i := range a.targets {
				d.addTarget(&a.targets[i])
			}
		case *keepKeysAction:
			d.Attributes = d.Attributes || a.attributes != nil
			d.Resource = d.Resource || a.resource != nil
		case *aggregateAction:
			d.Attributes = d.Attributes || a.without != nil || a.by != nil
			d.Resource = d.Resource || a.without != nil || a.by != nil
		case *sampleAction, dropAction, limitAction:
		default:
			return Deps{Attributes: true, Resource: true, Item: true}
		}
	}
	return d
}

func (r *Rule) addFieldReads(e exprReads) {
	r.impure = r.impure || e.impure
	r.attrAll = r.attrAll || e.attrAll
	for _, k := range e.attrKeys {
		if !slices.Contains(r.attrKeys, k) {
			r.attrKeys = append(r.attrKeys, k)
		}
	}
	for _, f := range e.fields {
		if !slices.Contains(r.fieldReads, f) {
			r.fieldReads = append(r.fieldReads, f)
		}
	}
}

// ReadsFields details Reads().Item: it lists the item fields (by their
// names in expressions, e.g. "severity_number") that the rule's
// expressions read. ok is false when the rule's outcome may depend on more
// of the item than these fields: an expression calls now(), or the rule
// samples (which hashes the item). With ok true, two items of one batch
// that agree on these fields and on the parts Reads names besides Item have
// the same outcome (top_k decides from the state earlier batches left, so
// across batches it may differ). The returned slice must not be modified.
func (r *Rule) ReadsFields() (fields []string, ok bool) {
	if r.impure {
		return nil, false
	}
	for _, a := range r.actions {
		switch a.(type) {
		case *setAction, *renameAction, *deleteAction, *keepKeysAction, dropAction, *aggregateAction, limitAction:
		default:
			return nil, false
		}
	}
	return r.fieldReads, true
}

// AttributeValues details Reads().Attributes: the attribute keys whose
// values the rule's outcome may depend on. They are the keys its
// expressions read by name and the attribute targets of set (which
// compares with the old value) and rename (whose value moves). What the
// rule's delete, keep_keys and aggregate actions do depends only on which
// keys an item has, not on their values, so their keys are not listed. all
// is true when the outcome may depend on any value: an expression reads
// the attributes other than by a constant key (the whole map, attributes[x],
// "k" in attributes), or the rule samples. With all false, two items of a
// batch with the same attribute keys, in the same order, that agree on the
// values of keys (and on the parts Reads names besides Attributes) have
// the same outcome. The returned slice is new.
func (r *Rule) AttributeValues() (keys []string, all bool) {
	if r.attrAll {
		return nil, true
	}
	keys = slices.Clone(r.attrKeys)
	add := func(t *target) {
		if t.kind == targetAttribute && !slices.Contains(keys, t.key) {
			keys = append(keys, t.key)
		}
	}
	for _, a := range r.actions {
		switch a := a.(type) {
		case *setAction:
			for i := range a.targets {
				add(&a.targets[i])
			}
		case *renameAction:
			for i := range a.from {
				add(&a.from[i])
				add(&a.to[i])
			}
		case *deleteAction, *keepKeysAction, *aggregateAction, limitAction, dropAction:
		default: // sample hashes the attributes
			return nil, true
		}
	}
	slices.Sort(keys)
	return keys, false
}
