package rules

import (
	"fmt"
	"reflect"

	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// set: {target: expression} assigns each target the value of its
// expression. Every expression sees the item as it was before the rule
// (assignment is simultaneous), and if one fails none is assigned.
// Setting an attribute to nil removes it.
type setAction struct {
	targets []target
	values  []*vm.Program
	reads   Deps // what the values read
}

func decodeSet(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "set", `want a mapping of target to expression, e.g. attributes["env"]: '"prod"'`)
		return nil
	}
	a := &setAction{}
	ok := true
	d.eachKey(v, func(tk, tv *yaml.Node) {
		t, good := d.target(r.Signal, "set", tk)
		if !good {
			ok = false
			return
		}
		want := reflect.Interface
		if t.kind == targetField {
			want = t.field.kind
		}
		p, deps := d.compile(r.Signal, "set "+t.text, tv, want)
		if p == nil {
			ok = false
			return
		}
		a.reads = a.reads.or(deps)
		for _, prev := range a.targets {
			if prev.kind == t.kind && prev.key == t.key && prev.field == t.field {
				d.errorf(tk, "set", "%s is set twice", t.text)
				ok = false
			}
		}
		a.targets = append(a.targets, t)
		a.values = append(a.values, p)
	})
	if !ok || len(a.targets) == 0 {
		if ok {
			d.errorf(v, "set", "nothing to set")
		}
		return nil
	}
	return a
}

func (a *setAction) apply(c *call) (outcome, error) {
	vals := c.ev.vals[:0]
	for i, p := range a.values {
		v, err := c.run(p)
		if err != nil {
			return unchanged, &EvalError{Rule: c.rule, Key: "set " + a.targets[i].text, Err: err}
		}
		t := &a.targets[i]
		if t.kind == targetField {
			if err := checkKind(t.field.kind, v); err != nil {
				return unchanged, &EvalError{Rule: c.rule, Key: "set " + t.text, Err: err}
			}
		} else {
			v = normalize(v)
		}
		vals = append(vals, v)
	}
	c.ev.vals = vals
	out := unchanged
	for i := range a.targets {
		t, v := &a.targets[i], vals[i]
		vals[i] = nil
		if t.kind == targetField {
			t.field.set(c.env, v) // cannot fail: checked above
			out = changed
			continue
		}
		if v == nil {
			if m := t.attrs(c.env); m != nil {
				if _, ok := m[t.key]; ok {
					delete(m, t.key)
					out = changed
				}
			}
			continue
		}
		m := t.attrsForWrite(c.env)
		// SameValue, as the columnar engine uses to decide what it writes:
		// assigning a NaN, bytes or an array equal to what is there leaves
		// the item's output as it was, so it is no change here either.
		if old, ok := m[t.key]; !ok || !SameValue(old, v) {
			out = changed
		}
		m[t.key] = v
	}
	return out, nil
}

func checkKind(k reflect.Kind, v any) error {
	switch k {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string, got %s", typeName(v))
		}
	case reflect.Int:
		if _, ok := v.(int); !ok {
			return fmt.Errorf("want an int, got %s", typeName(v))
		}
	}
	return nil
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("%T", v)
}

// normalize turns expr's values into the types OTLP attributes have:
// integers become int64, float32 becomes float64.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}
