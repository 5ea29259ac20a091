// Package agentstest checks the OpenTelemetry Collector snippets of
// docs/agents.md with the Collector's own configuration code: each
// component of a snippet is decoded into its factory's default config as
// the Collector decodes it (unknown keys are errors) and validated. It is a
// module of its own so that sluice's binary does not depend on the
// Collector: run it with `make test-docs` (or `go test ./...` here).
package agentstest

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/kafkaexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.yaml.in/yaml/v3"
)

// factory is what the test needs of a component factory.
type factory interface {
	Type() component.Type
	CreateDefaultConfig() component.Config
}

// factories by section and type, with the deprecated names the Collector
// still takes (otlp for otlp_grpc, otlphttp for otlp_http).
var factories = map[string]map[string]factory{
	"exporters": {
		"otlp_grpc": otlpexporter.NewFactory(), "otlp": otlpexporter.NewFactory(),
		"otlp_http": otlphttpexporter.NewFactory(), "otlphttp": otlphttpexporter.NewFactory(),
		"kafka": kafkaexporter.NewFactory(),
	},
	"processors": {"batch": batchprocessor.NewFactory()},
	"receivers":  {"otlp": otlpreceiver.NewFactory()},
	"extensions": {"bearertokenauth": bearertokenauthextension.NewFactory()},
}

// envRef is the Collector's ${env:NAME}, resolved before decoding.
var envRef = regexp.MustCompile(`\$\{env:[A-Za-z_][A-Za-z0-9_]*\}`)

// collectorSnippets are the ```yaml collector blocks of docs/agents.md,
// by the line they start on.
func collectorSnippets(t *testing.T) map[int]string {
	t.Helper()
	f, err := os.Open("../agents.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]string{}
	start := 0
	var body strings.Builder
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```") && !in:
			in, start = true, n+1
			body.Reset()
			if strings.TrimSpace(line[3:]) != "yaml collector" {
				start = 0
			}
		case strings.HasPrefix(line, "```"):
			in = false
			if start > 0 {
				out[start] = body.String()
			}
		case in:
			body.WriteString(line + "\n")
		}
	}
	return out
}

// Every component of every Collector snippet decodes into the component's
// config without an unknown key, and passes the component's validation.
func TestCollectorSnippetsDecode(t *testing.T) {
	snips := collectorSnippets(t)
	if len(snips) == 0 {
		t.Fatal("no ```yaml collector snippet in docs/agents.md")
	}
	checked := map[string]bool{}
	for line, text := range snips {
		var doc map[string]map[string]any
		if err := yaml.Unmarshal([]byte(envRef.ReplaceAllString(text, "token-from-the-environment")), &doc); err != nil {
			t.Errorf("docs/agents.md:%d: %v", line, err)
			continue
		}
		for section, comps := range doc {
			if section == "service" {
				continue
			}
			for id, raw := range comps {
				typ, _, _ := strings.Cut(id, "/")
				f := factories[section][typ]
				if f == nil {
					t.Errorf("docs/agents.md:%d: %s %s: no factory in this test", line, section, id)
					continue
				}
				if err := decode(f, raw); err != nil {
					t.Errorf("docs/agents.md:%d: %s %s: %v", line, section, id, err)
				}
				checked[section+"."+typ] = true
			}
		}
	}
	t.Logf("checked with the Collector's config code: %v", checked)
	for _, want := range []string{"exporters.otlp", "exporters.otlphttp", "exporters.kafka", "processors.batch", "extensions.bearertokenauth", "receivers.otlp"} {
		if !checked[want] {
			t.Errorf("no snippet uses %s", want)
		}
	}
}

// decode decodes raw into f's default config as the Collector does, and
// validates it.
func decode(f factory, raw any) error {
	m, _ := raw.(map[string]any)
	cfg := f.CreateDefaultConfig()
	if err := confmap.NewFromStringMap(m).Unmarshal(cfg); err != nil {
		return err
	}
	if err := confmap.Validate(cfg); err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	return nil
}

// The test can fail: a key that does not exist, and a value the component
// refuses.
func TestDecodeRefusesMistakes(t *testing.T) {
	for _, tc := range []struct {
		f   factory
		raw map[string]any
	}{
		{otlpexporter.NewFactory(), map[string]any{"endpoint": "sluice-ingest:4317", "compresion": "gzip"}},
		{kafkaexporter.NewFactory(), map[string]any{"metrics": map[string]any{"topic": "otlp_metrics", "encodin": "otlp_proto"}}},
		{batchprocessor.NewFactory(), map[string]any{"send_batch_size": 8192, "send_batch_max_size": 100}},
	} {
		if err := decode(tc.f, tc.raw); err == nil {
			t.Errorf("%s %v accepted", tc.f.Type(), tc.raw)
		}
	}
}
