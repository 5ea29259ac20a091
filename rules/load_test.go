package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

func TestExampleLoads(t *testing.T) {
	s, err := Load("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	want := map[otlpwire.Signal][]string{
		otlpwire.Traces:  {"drop-health-checks", "hash-emails"},
		otlpwire.Logs:    {"drop-debug-logs"},
		otlpwire.Metrics: {"tidy-routes"},
	}
	for sig, names := range want {
		var got []string
		for _, r := range s.Rules(sig) {
			got = append(got, r.Name)
		}
		if strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("%s rules = %v, want %v", sig, got, names)
		}
	}
	if got := s.Files(); len(got) != 1 || got[0] != filepath.Join("testdata/good", "example.yaml") {
		t.Errorf("Files() = %v", got)
	}
	if len(s.Version()) != 12 {
		t.Errorf("Version() = %q", s.Version())
	}
}

// TestBadFiles loads each file of testdata/bad on its own and checks every
// error, with its position.
func TestBadFiles(t *testing.T) {
	tests := map[string][]string{
		"unknown-key.yaml": {`unknown-key.yaml:4:5: rule "a": unknown key "whne" (did you mean when? valid: name, signal, when, on_error, sample, drop, keep, set, rename, delete, keep_keys, aggregate, limit)`},
		"bad-signal.yaml":  {`bad-signal.yaml:3:13: rule "a": signal: unknown signal "log" (valid: metrics, logs, traces)`},
		"bad-target.yaml": {
			`bad-target.yaml:5:7: rule "a": set: bad target "attrs[\"x\"]": only attributes[...] and resource[...] can be indexed (did you mean attributes?)`,
			`bad-target.yaml:6:7: rule "a": set: bad target "attributes[x]": the key must be a quoted string, as in attributes["http.route"]`,
			`bad-target.yaml:7:7: rule "a": set: body is not a settable field of metrics (settable: name, unit; or attributes["key"], resource["key"])`,
		},
		"type-error.yaml":   {`type-error.yaml:4:16: rule "a": when: invalid operation: + (mismatched types string and int)`},
		"unknown-name.yaml": {`unknown-name.yaml:4:28: rule "hash-emails": when: unknown name attrs (did you mean attributes?)`},
		"unknown-func.yaml": {`unknown-func.yaml:5:13: rule "a": set body: unknown function sha265 (did you mean sha256?)`},
		"bad-regex.yaml":    {"bad-regex.yaml:5:63: rule \"a\": set attributes[\"route\"]: replace_regex: bad regular expression \"/[0-9+\": missing closing ]: `[0-9+`"},
		"yaml-syntax.yaml":  {`yaml-syntax.yaml:3: mapping values are not allowed in this context`},
		"duplicate.yaml":    {`duplicate.yaml:5:5: rule "a": duplicate name (first at duplicate.yaml:2)`},
		"multi.yaml": {
			`multi.yaml:2:5: rule #1: missing name`,
			`multi.yaml:5:9: rule #1: when: unknown name severity_txt (did you mean severity_text?)`,
			`multi.yaml:9:13: rule "b": sample: want a fraction from 0 to 1, e.g. 0.1 to keep 10%, not "1.5"`,
			`multi.yaml:10:15: rule "b": on_error: want skip or drop, not "ignore"`,
			`multi.yaml:13:5: rule "c": keep: needs a when condition (keep: true drops the items that do not match it)`,
			`multi.yaml:16:5: rule "d": drop: cannot be combined with other actions (drop: true drops every matching item)`,
			`multi.yaml:17:33: rule "d": delete: name is a field and cannot be removed; set it instead`,
			`multi.yaml:19:7: rule "d": rename: name is a field; only attributes[...] and resource[...] can be renamed`,
			`multi.yaml:20:29: rule "d": keep_keys: want a list of keys, e.g. ["http.method", "http.route"]`,
			`multi.yaml:20:34: rule "d": keep_keys: unknown key "labels" (valid: attributes, resource)`,
		},
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) != len(tests) {
		t.Errorf("%d files in testdata/bad, %d in the table", len(files), len(tests))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(map[string][]byte{name: data})
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want Errors", err)
			}
			if got, want := errs.Error(), strings.Join(tests[name], "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestMoreErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not a list", "rules: {a: 1}\n", `f.yaml:1:8: rules: want a list of rules`},
		{"top key", "rule: []\n", `f.yaml:1:1: unknown key "rule" (valid: rules, merge)`},
		{"no action", "rules:\n  - name: a\n    signal: logs\n", `f.yaml:2:5: rule "a": no action (give one of: sample, drop, keep, set, rename, delete, keep_keys, aggregate, limit)`},
		{"missing signal", "rules:\n  - name: a\n    drop: true\n", `f.yaml:2:5: rule "a": missing signal (metrics, logs or traces)`},
		{"when not bool", "rules:\n  - name: a\n    signal: metrics\n    when: name\n    drop: true\n", `f.yaml:4:11: rule "a": when: expected bool, but got string`},
		{"set field type", "rules:\n  - name: a\n    signal: logs\n    set:\n      severity_text: severity_number\n", `f.yaml:5:22: rule "a": set severity_text: expected string, but got int`},
		{"bare word value", "rules:\n  - name: a\n    signal: logs\n    set:\n      attributes[\"env\"]: prod\n", `f.yaml:5:26: rule "a": set attributes["env"]: unknown name prod (logs has no such field; to write a string, quote it: '"prod"')`},
		{"regex not literal", "rules:\n  - name: a\n    signal: logs\n    when: match_regex(severity_text, body)\n    drop: true\n", `f.yaml:4:38: rule "a": when: match_regex: the pattern must be a string literal, so it is compiled once when the rules load`},
		{"repeated key", "rules:\n  - name: a\n    signal: logs\n    drop: true\n    drop: true\n", `f.yaml:5:5: rule "a": key "drop" repeated (first at line 4)`},
		{"rename to itself", "rules:\n  - name: a\n    signal: logs\n    rename:\n      attributes[\"a\"]: attributes[\"a\"]\n", `f.yaml:5:24: rule "a": rename: attributes["a"] is renamed to itself`},
		{"sample word", "rules:\n  - name: a\n    signal: logs\n    sample: half\n", `f.yaml:4:13: rule "a": sample: want a fraction from 0 to 1, e.g. 0.1 to keep 10%, not "half"`},
		{"drop not bool", "rules:\n  - name: a\n    signal: logs\n    drop: yes please\n", `f.yaml:4:11: rule "a": drop: want true or false, not "yes please"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"f.yaml": []byte(tt.src)})
			if err == nil || err.Error() != tt.want {
				t.Errorf("err =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

// TestAllErrorsOfADirectory checks that errors of every file are reported,
// in file order.
func TestAllErrorsOfADirectory(t *testing.T) {
	fsys := fstest.MapFS{
		"20-b.yaml": {Data: []byte("rules:\n  - name: b\n    signal: log\n    drop: true\n")},
		"10-a.yml":  {Data: []byte("rules:\n  - name: a\n    signal: logs\n    when: nope\n    drop: true\n")},
		"30-c.yaml": {Data: []byte("rules:\n  - name: a\n    signal: logs\n    drop: true\n")},
	}
	_, err := LoadFS(fsys)
	want := `10-a.yml:4:11: rule "a": when: unknown name nope (logs items have: attributes, resource, scope, body, severity_number, severity_text, trace_id, span_id)
20-b.yaml:3:13: rule "b": signal: unknown signal "log" (valid: metrics, logs, traces)
30-c.yaml:2:5: rule "a": duplicate name (first at 10-a.yml:2)`
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}

func TestDirectoryOrderAndSkips(t *testing.T) {
	rule := func(name string) []byte {
		return []byte("rules:\n  - name: " + name + "\n    signal: logs\n    set:\n      attributes[\"order\"]: concat(attributes[\"order\"], \"" + name + "\")\n")
	}
	fsys := fstest.MapFS{
		"20-b.yaml":        {Data: rule("b")},
		"10-a.yml":         {Data: append(rule("a1"), []byte("  - name: a2\n    signal: logs\n    set:\n      attributes[\"order\"]: concat(attributes[\"order\"], \"a2\")\n")...)},
		".hidden.yaml":     {Data: []byte("not: [valid")},
		"README.md":        {Data: []byte("# rules")},
		"tests/t.yaml":     {Data: []byte("not: [valid")},
		"sub/nested.yaml":  {Data: []byte("not: [valid")},
		"30-empty.yaml":    {Data: nil},
		"40-no-rules.yaml": {Data: []byte("rules:\n")},
	}
	s, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Files(), " "); got != "10-a.yml 20-b.yaml 30-empty.yaml 40-no-rules.yaml" {
		t.Errorf("files = %s", got)
	}
	env := &LogEnv{}
	if _, err := s.Apply(env); err != nil {
		t.Fatal(err)
	}
	if got := env.Attributes["order"]; got != "a1a2b" {
		t.Errorf("order = %v, want a1a2b", got)
	}
}

func TestVersion(t *testing.T) {
	a := []byte("rules:\n  - name: a\n    signal: logs\n    drop: true\n")
	v := func(files map[string][]byte) string {
		s, err := Parse(files)
		if err != nil {
			t.Fatal(err)
		}
		return s.Version()
	}
	base := v(map[string][]byte{"a.yaml": a})
	if base != v(map[string][]byte{"a.yaml": a}) {
		t.Error("version differs for the same files")
	}
	edited := append([]byte(nil), a...)
	edited = append(edited, "# a comment\n"...)
	for name, files := range map[string]map[string][]byte{
		"edited":  {"a.yaml": edited},
		"renamed": {"b.yaml": a},
		"added":   {"a.yaml": a, "b.yaml": []byte("rules: []\n")},
	} {
		if got := v(files); got == base {
			t.Errorf("%s: version unchanged", name)
		}
	}
	// Load names files by dir/name but hashes only the name.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), a, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != base {
		t.Errorf("Load version %s, Parse version %s", s.Version(), base)
	}
}

func TestDependsOn(t *testing.T) {
	tests := []struct {
		sig  string
		when string
		want Deps
	}{
		{"traces", `attributes["http.route"] == "/x"`, Deps{Attributes: true}},
		{"traces", `resource["service.name"] == "a" && scope.name == "b"`, Deps{Resource: true, Scope: true}},
		{"traces", `duration_ms > 100`, Deps{Item: true}},
		{"logs", `body contains "x" || "k" in attributes`, Deps{Attributes: true, Item: true}},
		{"logs", `true`, Deps{}},
		{"logs", `now().Hour() > 12`, Deps{Item: true}},
		{"metrics", `let name2 = resource["x"]; name2 == "y"`, Deps{Resource: true}},
		{"metrics", `any(["a", "b"], {# in attributes})`, Deps{Attributes: true}},
	}
	for _, tt := range tests {
		src := "rules:\n  - name: r\n    signal: " + tt.sig + "\n    when: '" + strings.ReplaceAll(tt.when, "'", "''") + "'\n    drop: true\n"
		s, err := Parse(map[string][]byte{"f.yaml": []byte(src)})
		if err != nil {
			t.Errorf("%s: %v", tt.when, err)
			continue
		}
		if got := s.All()[0].DependsOn(); got != tt.want {
			t.Errorf("%s: DependsOn() = %+v, want %+v", tt.when, got, tt.want)
		}
	}
}
