package deploy

import (
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// `helm lint --strict` passes for every case: Chart.yaml, values.yaml, the
// templates (rendered strictly: a missing value is an error) and the
// Kubernetes versions of the objects.
func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion("v1.30.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range chartCases(t) {
		l := lint.AllWithKubeVersion(chartDir, tc.values, "observability", kv)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev { // as --strict; INFO is "icon is recommended"
				t.Errorf("%s: %s", tc.name, m)
			}
		}
	}
}
