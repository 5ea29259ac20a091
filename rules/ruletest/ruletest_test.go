package ruletest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/schemas"
)

type identity struct{}

func (identity) Apply(b *schemas.Batch) (*schemas.Batch, error) { return b, nil }

func TestRunReportsPassesAndDiffs(t *testing.T) {
	tests, err := Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum := Run(tests, identity{}, &out)
	if sum.Passed != 3 || sum.Failed != 1 {
		t.Fatalf("summary %+v\n%s", sum, out.String())
	}
	for _, want := range []string{
		"ok   testdata/tests/identity.yaml:2: logs pass unchanged",
		"FAIL testdata/tests/identity.yaml:20: a wrong expectation fails with a diff",
		`"GET /other"`, `"GET /healthz"`,
		"3 passed, 1 failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "tests", "bad.yaml"), []byte("tests:\n  - name: x\n    signal: profiles\n    inptu: {}\n"), 0o644)
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), `bad.yaml:4:5: tests[0].inptu: unknown key "inptu"`) {
		t.Fatalf("got %v", err)
	}
	// No tests directory: nothing to run, no error.
	if tests, err := Load(t.TempDir()); err != nil || len(tests) != 0 {
		t.Fatalf("%v %v", tests, err)
	}
}
