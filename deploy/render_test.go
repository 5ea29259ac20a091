package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const chartDir = "helm/sluice"

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) the
// chart uses, with KEDA's field names. KEDA's own Go module pulls in most
// of Kubernetes' controller machinery, so the subset is written here;
// decoded strictly like the rest, a field outside it fails.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

// kinds are the objects the chart may render, by apiVersion and kind.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                     func() any { return new(appsv1.StatefulSet) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return new(monitoringv1.PodMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
	"keda.sh/v1alpha1/ScaledObject":           func() any { return new(scaledObject) },
}

// object is one rendered document, decoded into its API type.
type object struct {
	File string // the template that rendered it
	Kind string
	Name string
	Obj  any
}

// decode decodes one YAML document strictly into the API type of its kind:
// unknown or misspelt fields, duplicate keys and wrong types are errors.
// A document without content (a template that rendered nothing) is nil.
func decode(doc []byte) (*object, error) {
	var probe map[string]any
	if err := yaml.Unmarshal(doc, &probe); err != nil {
		return nil, err
	}
	if len(probe) == 0 {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind the chart may render", tm.APIVersion, tm.Kind)
	}
	// As Helm sends it: YAML to JSON without regard to the type (a number
	// stays a number where the API wants a string), duplicate keys refused;
	// then the JSON into the API type, refusing unknown fields.
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	obj := newObj()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.Kind, name(doc), err)
	}
	m, ok := obj.(metav1.Object)
	if !ok || m.GetName() == "" {
		return nil, fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return &object{Kind: tm.Kind, Name: m.GetName(), Obj: obj}, nil
}

// name is a document's metadata.name, for errors.
func name(doc []byte) string {
	var o struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	yaml.Unmarshal(doc, &o)
	return o.Metadata.Name
}

// loadChart loads the chart from its directory, as `helm install` does.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// renderChart renders ch with vals over its values.yaml, as `helm install
// sluice <chart> -n observability` would, and decodes every object.
func renderChart(ch *chart.Chart, vals map[string]any) ([]object, error) {
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "sluice", Namespace: "observability", Revision: 1, IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	var objs []object
	var errs []error
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(files[name])))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				break
			}
			o, err := decode(doc)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			if o != nil {
				o.File = name
				objs = append(objs, *o)
			}
		}
	}
	return objs, errors.Join(errs...)
}

// readValues reads a values file.
func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// parseValues parses values written in the test.
func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var (
	sluiceOnce sync.Once
	sluiceBin  string
	sluiceErr  error
	sluiceDir  string // where sluice built it; removed once the tests ran
)

// TestMain removes the binary sluice built (some 60 MB a run).
func TestMain(m *testing.M) {
	code := m.Run()
	if sluiceDir != "" {
		os.RemoveAll(sluiceDir)
	}
	os.Exit(code)
}

// sluice is the sluice binary: $SLUICE_BIN, or built from the repository's
// root module once per test run.
func sluice(t *testing.T) string {
	t.Helper()
	sluiceOnce.Do(func() {
		if bin := os.Getenv("SLUICE_BIN"); bin != "" {
			sluiceBin = bin
			return
		}
		dir, err := os.MkdirTemp("", "sluice-deploy-test")
		if err != nil {
			sluiceErr = err
			return
		}
		sluiceDir = dir
		sluiceBin = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", sluiceBin, "./cmd/sluice")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			sluiceErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out)
		}
	})
	if sluiceErr != nil {
		t.Fatal(sluiceErr)
	}
	return sluiceBin
}
