package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in a config file, located at a line and column.
type Error struct {
	File   string
	Line   int
	Column int
	Path   string // dotted key path, e.g. bus.kafka.brokers
	Msg    string

	unknownKey string // set for unknown-key errors
}

// UnknownKey is the key of an unknown-key error, "" for other errors.
func (e *Error) UnknownKey() string { return e.unknownKey }

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// DecodeStrict decodes node into out (a pointer to a struct) and reports
// every mapping key that out has no field for, each with its line. yaml.v3
// only offers this check when decoding from a byte stream; sinks decode
// their own part of the file from a node, so the check lives here.
func DecodeStrict(node *yaml.Node, path string, out any) []*Error {
	var errs []*Error
	if err := node.Decode(out); err != nil {
		errs = append(errs, typeErrors(node, path, err)...)
	}
	checkKeys(node, path, reflect.TypeOf(out), &errs)
	return errs
}

// typeErrors turns yaml's "line N: cannot unmarshal ..." messages into
// located errors.
func typeErrors(node *yaml.Node, path string, err error) []*Error {
	var located *Error
	if errors.As(err, &located) {
		return []*Error{located}
	}
	te, ok := err.(*yaml.TypeError)
	if !ok {
		return []*Error{{Line: node.Line, Column: node.Column, Path: path, Msg: err.Error()}}
	}
	var out []*Error
	for _, m := range te.Errors {
		e := &Error{Path: path, Msg: m}
		var line int
		if n, _ := fmt.Sscanf(m, "line %d:", &line); n == 1 {
			e.Line = line
			e.Msg = strings.TrimSpace(m[strings.IndexByte(m, ':')+1:])
			e.Path = ""
		}
		out = append(out, e)
	}
	return out
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func checkKeys(node *yaml.Node, path string, t reflect.Type, errs *[]*Error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if t == reflect.TypeOf(yaml.Node{}) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decoded and checked by its own UnmarshalYAML
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return // a type error already reported by Decode, or a custom unmarshaler
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, &Error{Line: k.Line, Column: k.Column, Path: join(path, k.Value), unknownKey: k.Value,
					Msg: fmt.Sprintf("unknown key %q (valid: %s)", k.Value, strings.Join(sortedKeys(fields), ", "))})
				continue
			}
			checkKeys(v, join(path, k.Value), ft, errs)
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			return
		}
		for i, v := range node.Content {
			checkKeys(v, fmt.Sprintf("%s[%d]", path, i), t.Elem(), errs)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			checkKeys(node.Content[i+1], join(path, node.Content[i].Value), t.Elem(), errs)
		}
	}
}

// yamlFields maps the yaml keys of struct t (following ",inline") to the
// field types. A struct with a custom UnmarshalYAML checks itself and has
// no entry here: its keys are not looked at.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	return slices.Sorted(maps.Keys(m))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lookup finds the node at a dotted path (with [i] for sequence items) below
// root, for locating validation errors. It returns nil when absent.
func lookup(root *yaml.Node, path string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			fmt.Sscanf(part[i:], "[%d]", &idx)
		}
		if key != "" {
			if n.Kind != yaml.MappingNode {
				return nil
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return nil
			}
			n = next
		}
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil
			}
			n = n.Content[idx]
		}
	}
	return n
}
