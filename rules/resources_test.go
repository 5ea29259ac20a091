package rules

import "testing"

// TestKeepsResources: every way a metrics rule can edit a resource says
// so; point attributes, fields, drops, samples, limits and other signals'
// rules do not.
func TestKeepsResources(t *testing.T) {
	cases := []struct {
		name, rule string
		keeps      bool
	}{
		{"set attribute", `set: {'attributes["env"]': '"prod"'}`, true},
		{"delete attribute", `delete: ['attributes["debug_id"]']`, true},
		{"rename attribute", `rename: {'attributes["a"]': 'attributes["b"]'}`, true},
		{"keep_keys attributes", `keep_keys: {attributes: [a]}`, true},
		{"set name", `set: {name: '"x"'}`, true},
		{"drop", `drop: true`, true},
		{"sample", `sample: 0.5`, true},
		{"limit", `limit: {max_series: 10}`, true},
		{"aggregate without by", `aggregate: {gauge: sum}`, true},
		{"set resource", `set: {'resource["service.name"]': '"x"'}`, false},
		{"delete resource", `delete: ['attributes["a"]', 'resource["k8s.pod.name"]']`, false},
		{"rename to resource", `rename: {'attributes["a"]': 'resource["b"]'}`, false},
		{"rename from resource", `rename: {'resource["a"]': 'attributes["b"]'}`, false},
		{"keep_keys resource", `keep_keys: {resource: [service.name]}`, false},
		{"aggregate without", `aggregate: {without: [pod]}`, false},
		{"aggregate by", `aggregate: {by: [route]}`, false},
	}
	for _, c := range cases {
		s := mustParse(t, "rules:\n  - name: r\n    signal: metrics\n    "+c.rule+"\n")
		if got := s.KeepsResources(); got != c.keeps {
			t.Errorf("%s: KeepsResources() = %v, want %v", c.name, got, c.keeps)
		}
	}
	logs := mustParse(t, "rules:\n  - name: r\n    signal: logs\n    delete: ['resource[\"k8s.pod.name\"]']\n")
	if !logs.KeepsResources() {
		t.Error("a logs rule that edits resources: KeepsResources() = false, want true (only metrics merge)")
	}
}
