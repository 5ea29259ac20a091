package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Kubernetes manifests are well-formed and the config they carry is one
// sluice accepts.
func TestDeployManifests(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	var config string
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				Kind string            `yaml:"kind"`
				Data map[string]string `yaml:"data"`
			}
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if doc.Kind == "" {
				t.Errorf("%s: a document without kind", name)
			}
			if doc.Kind == "ConfigMap" {
				config = doc.Data["sluice.yaml"]
			}
		}
	}
	if config == "" {
		t.Fatal("no ConfigMap with sluice.yaml")
	}
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(path, []byte(config), 0o644)
	if out, err := run(t, "check", "-c", path); err != nil {
		t.Fatalf("the deployed config is rejected: %v %s", err, out)
	}
}
