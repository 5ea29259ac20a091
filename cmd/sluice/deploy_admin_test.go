package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/config"
)

// The manifests expose the admin port deliberately: the deployed config
// keeps pprof off, no Service publishes the admin port, and a
// NetworkPolicy admits to it only a chosen namespace, for every sluice
// Deployment and StatefulSet; OTLP stays open.
func TestDeployAdminExposure(t *testing.T) {
	type port struct {
		Port any `yaml:"port"`
	}
	type peer struct {
		NamespaceSelector *struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"namespaceSelector"`
	}
	type doc struct {
		Kind     string                `yaml:"kind"`
		Metadata struct{ Name string } `yaml:"metadata"`
		Data     map[string]string     `yaml:"data"`
		Spec     struct {
			Ports []struct {
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
			PodSelector struct {
				MatchLabels      map[string]string `yaml:"matchLabels"`
				MatchExpressions []struct {
					Key, Operator string
					Values        []string
				} `yaml:"matchExpressions"`
			} `yaml:"podSelector"`
			Ingress []struct {
				From  []peer `yaml:"from"`
				Ports []port `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	files, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	var docs []doc
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var d doc
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			docs = append(docs, d)
		}
	}
	// admin: whom a NetworkPolicy admits to each pod's admin port
	// (nil: anyone); otlp: pods whose OTLP ports are open.
	admin := map[string][]peer{}
	guarded := map[string]bool{}
	otlp := map[string]bool{}
	var workloads []string
	for _, d := range docs {
		switch d.Kind {
		case "ConfigMap":
			cfg, err := config.Parse("configmap.yaml", []byte(d.Data["sluice.yaml"]))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Admin.Pprof {
				t.Error("the deployed config serves pprof")
			}
		case "Deployment", "StatefulSet":
			workloads = append(workloads, d.Metadata.Name)
		case "Service":
			for _, p := range d.Spec.Ports {
				if p.TargetPort == "admin" || p.TargetPort == 9464 {
					t.Errorf("Service %s publishes the admin port", d.Metadata.Name)
				}
			}
		case "NetworkPolicy":
			pods := d.Spec.PodSelector.MatchExpressions
			names := []string{d.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"]}
			for _, e := range pods {
				if e.Key == "app.kubernetes.io/name" && e.Operator == "In" {
					names = append(names, e.Values...)
				}
			}
			for _, pod := range names {
				if pod == "" {
					continue
				}
				guarded[pod] = true
				for _, rule := range d.Spec.Ingress {
					for _, p := range rule.Ports {
						switch p.Port {
						case "admin", 9464:
							if len(rule.From) == 0 {
								t.Errorf("NetworkPolicy %s opens the admin port of %s to everyone", d.Metadata.Name, pod)
							}
							admin[pod] = append(admin[pod], rule.From...)
						case "otlp-grpc", "otlp-http", 4317, 4318:
							otlp[pod] = true
						}
					}
				}
			}
		}
	}
	if len(workloads) == 0 {
		t.Fatal("no workloads in the manifests")
	}
	for _, w := range workloads {
		if !guarded[w] {
			t.Errorf("no NetworkPolicy selects %s: its admin port is open to the cluster", w)
			continue
		}
		if !slices.ContainsFunc(admin[w], func(p peer) bool { return p.NamespaceSelector != nil }) {
			t.Errorf("%s: no NetworkPolicy admits the scraper's namespace to the admin port (probes and metrics need it)", w)
		}
	}
	if !otlp["sluice-ingest"] {
		t.Error("the ingesters' OTLP ports are not open")
	}
}
