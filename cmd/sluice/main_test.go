package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCheckAcceptsTheExampleConfig(t *testing.T) {
	out, err := run(t, "check", "-c", "../../examples/sluice.yaml")
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestCheckReportsEveryErrorWithItsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("bus:\n  kind: rabbitmq\nsinks:\n  - name: a\n    type: file\n    signals: [logs]\n    paht: /tmp\n"), 0o644)
	_, err := run(t, "check", "-c", path)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{path + `:2:9: bus.kind: unknown bus kind "rabbitmq"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not contain %q", err, want)
		}
	}
	// Sink keys are checked once the common keys are valid.
	os.WriteFile(path, []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    paht: /tmp\n"), 0o644)
	if _, err := run(t, "check", "-c", path); err == nil || !strings.Contains(err.Error(), path+`:5:5: sinks[0].paht: unknown key "paht"`) {
		t.Errorf("sink key: %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "sluice ") {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if _, err := run(t, "frobnicate"); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestRulesCheck(t *testing.T) {
	out, err := run(t, "rules", "check", "../../examples/rules")
	if err != nil || !strings.Contains(out, "4 rules in 1 file ok, version ") {
		t.Fatalf("%q, %v", out, err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("rules:\n  - name: x\n    signal: logs\n    when: severity_numbr < 9\n    drop: true\n"), 0o644)
	out, err = run(t, "rules", "check", dir)
	if err == nil || !strings.Contains(out+err.Error(), "bad.yaml:4:") {
		t.Fatalf("bad rule file: %q, %v", out, err)
	}
}

func TestRulesTest(t *testing.T) {
	out, err := run(t, "rules", "test", "../../examples/rules")
	if err != nil || !strings.Contains(out, "4 passed, 0 failed") {
		t.Fatalf("%q, %v", out, err)
	}
	// A wrong expectation fails, with a diff.
	dir := t.TempDir()
	rules, _ := os.ReadFile("../../examples/rules/example.yaml")
	os.WriteFile(filepath.Join(dir, "example.yaml"), rules, 0o644)
	os.MkdirAll(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "tests", "t.yaml"), []byte(`tests:
  - name: debug logs are kept (wrong)
    signal: logs
    input: {resourceLogs: [{scopeLogs: [{logRecords: [{severityNumber: 5, body: {stringValue: x}}]}]}]}
    expect: {resourceLogs: [{scopeLogs: [{logRecords: [{severityNumber: 5, body: {stringValue: x}}]}]}]}
`), 0o644)
	out, err = run(t, "rules", "test", dir)
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(out, `-`) || !strings.Contains(out, "0 passed, 1 failed") {
		t.Fatalf("%q, %v", out, err)
	}
}
