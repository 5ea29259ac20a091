package columnar

import (
	"reflect"

	"github.com/sluice-dev/sluice/rules"
)

// writesResource reports whether r may edit resource attributes (set,
// rename, delete or keep_keys on resource[...]).
//
// The rules package does not export what a rule writes (only what its
// condition reads, Rule.DependsOn), so this reads the compiled actions by
// reflection. Anything it does not recognise counts as a write, so a change
// in rules' internals can only make the engine slower (copy-on-write of the
// resource map for every item), never wrong. A Rule.Writes() method in
// package rules would replace this.
func writesResource(r *rules.Rule) bool {
	v := reflect.ValueOf(r).Elem().FieldByName("actions")
	if !v.IsValid() || v.Kind() != reflect.Slice {
		return true
	}
	for i := 0; i < v.Len(); i++ {
		a := v.Index(i)
		for a.Kind() == reflect.Interface || a.Kind() == reflect.Pointer {
			if a.IsNil() {
				return true
			}
			a = a.Elem()
		}
		if a.Kind() != reflect.Struct {
			return true
		}
		switch a.Type().Name() {
		case "dropAction", "sampleAction":
		case "setAction", "deleteAction":
			if targetsResource(a.FieldByName("targets")) {
				return true
			}
		case "renameAction":
			if targetsResource(a.FieldByName("from")) || targetsResource(a.FieldByName("to")) {
				return true
			}
		case "keepKeysAction":
			f := a.FieldByName("resource")
			if !f.IsValid() || f.Kind() != reflect.Map || !f.IsNil() {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// targetResource is rules' targetKind of resource["key"].
const targetResource = 1

func targetsResource(ts reflect.Value) bool {
	if !ts.IsValid() || ts.Kind() != reflect.Slice {
		return true
	}
	for i := 0; i < ts.Len(); i++ {
		k := ts.Index(i).FieldByName("kind")
		if !k.IsValid() || k.Kind() != reflect.Uint8 {
			return true
		}
		if k.Uint() == targetResource {
			return true
		}
	}
	return false
}
