package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary rule files to the loader: it must never panic,
// and it either returns a set or errors that name the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("rules:\n  - name: a\n    signal: metrics\n    when: value > 1\n    set:\n      attributes[\"x\"]: upper(name)\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse(map[string][]byte{"f.yaml": data})
		if err != nil {
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			for _, e := range errs {
				if e.File != "f.yaml" {
					t.Fatalf("error without the file: %v", e)
				}
			}
			return
		}
		_ = set.Version()
	})
}
