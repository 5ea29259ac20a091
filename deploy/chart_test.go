package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// chartCase is one set of values the chart is rendered with.
type chartCase struct {
	name   string
	values map[string]any
}

// chartCases are the default values, every example values file, and
// combinations that switch on what the defaults leave off.
func chartCases(t *testing.T) []chartCase {
	t.Helper()
	cases := []chartCase{{name: "default"}}
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("examples: %v, want the Strimzi and the single-node values", files)
	}
	for _, f := range files {
		cases = append(cases, chartCase{name: f, values: readValues(t, f)})
	}
	for name, v := range map[string]string{
		"keda": `
worker:
  keda: {enabled: true, lagThreshold: 5000, maxReplicas: 24}
config:
  worker: {group: sluice-workers}
`,
		"monitoring": `
metrics:
  podMonitor: {enabled: true, labels: {release: prometheus}}
  serviceMonitor: {enabled: true, labels: {release: prometheus}}
alerts:
  prometheusRule: {enabled: true, labels: {release: prometheus}}
`,
		"secrets-and-sinks": `
kafka:
  brokers: [k-0:9093, k-1:9093]
  tls:
    enabled: true
    caSecret: {name: kafka-ca, key: ca.crt}
    certSecret: {name: kafka-user, certKey: user.crt, keyKey: user.key}
  sasl:
    enabled: true
    mechanism: PLAIN
    username: sluice
    passwordSecret: {name: kafka-password, key: pw}
ingest:
  tokens: {secretName: sluice-tokens, key: tokens.yaml}
  tls: {secretName: sluice-otlp-tls, clientCAKey: ca.crt}
  autoscaling: {enabled: false}
  replicas: 2
worker:
  autoscaling: {enabled: false}
rules:
  files:
    health.yaml: |
      rules:
        - name: drop-health-checks
          signal: traces
          when: attributes["http.route"] in ["/healthz", "/readyz"]
          drop: true
sinks:
  - name: archive
    replicas: 2
    config: {type: file, signals: [logs], path: /data/archive}
    persistence: {size: 5Gi, storageClassName: fast}
  - name: loki
    config:
      type: loki
      signals: [logs]
      url: https://loki.example:3100/loki/api/v1/push
      bearer_token_file: /etc/sluice/secrets/loki/token
    secretMounts:
      - {secretName: loki-token, mountPath: /etc/sluice/secrets/loki}
  - name: traces
    replicas: 3
    config: {type: otlp, signals: [traces], endpoint: tempo.tempo:4317}
`,
		"git-sync": `
rules:
  gitSync: {enabled: true, repo: https://github.com/acme/telemetry-rules, ref: v3, path: sluice/rules, credentialsSecret: git-creds}
`,
	} {
		cases = append(cases, chartCase{name: name, values: parseValues(t, v)})
	}
	return cases
}

// manifest is one rendering of the chart, its objects indexed.
type manifest struct {
	objs      []object
	configs   map[string]*corev1.ConfigMap
	services  []*corev1.Service
	policies  []*networkingv1.NetworkPolicy
	hpas      []*autoscalingv2.HorizontalPodAutoscaler
	scaled    []*scaledObject
	workloads []workload
}

// workload is a Deployment or StatefulSet.
type workload struct {
	kind, name string
	replicas   *int32
	selector   *metav1.LabelSelector
	template   corev1.PodTemplateSpec
	claims     []corev1.PersistentVolumeClaim
}

func (w workload) String() string { return w.kind + " " + w.name }

// container is the workload's sluice container.
func (w workload) container(t *testing.T) corev1.Container {
	t.Helper()
	for _, c := range w.template.Spec.Containers {
		if c.Name == "sluice" {
			return c
		}
	}
	t.Fatalf("%s: no container sluice", w)
	return corev1.Container{}
}

func index(t *testing.T, objs []object) *manifest {
	t.Helper()
	m := &manifest{objs: objs, configs: map[string]*corev1.ConfigMap{}}
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *corev1.ConfigMap:
			m.configs[x.Name] = x
		case *corev1.Service:
			m.services = append(m.services, x)
		case *networkingv1.NetworkPolicy:
			m.policies = append(m.policies, x)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, x)
		case *scaledObject:
			m.scaled = append(m.scaled, x)
		case *appsv1.Deployment:
			m.workloads = append(m.workloads, workload{kind: "Deployment", name: x.Name, replicas: x.Spec.Replicas, selector: x.Spec.Selector, template: x.Spec.Template})
		case *appsv1.StatefulSet:
			m.workloads = append(m.workloads, workload{kind: "StatefulSet", name: x.Name, replicas: x.Spec.Replicas, selector: x.Spec.Selector, template: x.Spec.Template, claims: x.Spec.VolumeClaimTemplates})
		}
	}
	if len(m.workloads) == 0 {
		t.Fatal("no workloads rendered")
	}
	return m
}

// config is the sluice config a workload's pods read: the ConfigMap key
// mounted at /etc/sluice/sluice.yaml.
func (m *manifest) config(t *testing.T, w workload) (key, data string, cfg map[string]any) {
	t.Helper()
	c := w.container(t)
	var volName string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == "/etc/sluice/sluice.yaml" {
			volName = vm.Name
		}
	}
	for _, v := range w.template.Spec.Volumes {
		if v.Name != volName || v.ConfigMap == nil {
			continue
		}
		cm := m.configs[v.ConfigMap.Name]
		if cm == nil {
			t.Fatalf("%s: mounts ConfigMap %s, which the chart does not render", w, v.ConfigMap.Name)
		}
		for _, it := range v.ConfigMap.Items {
			if it.Path == "sluice.yaml" {
				key = it.Key
			}
		}
		data, ok := cm.Data[key]
		if !ok {
			t.Fatalf("%s: ConfigMap %s has no key %q", w, cm.Name, key)
		}
		if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
			t.Fatalf("%s: %s: %v", w, key, err)
		}
		return key, data, cfg
	}
	t.Fatalf("%s: no config mounted at /etc/sluice/sluice.yaml", w)
	return "", "", nil
}

// lookup walks a decoded YAML tree: lookup(cfg, "bus", "kafka", "tls").
func lookup(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

// TestChart renders every case and checks what the chart promises.
func TestChart(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range chartCases(t) {
		t.Run(strings.ReplaceAll(tc.name, "/", "_"), func(t *testing.T) {
			objs, err := renderChart(ch, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			m := index(t, objs)
			vals := effectiveValues(t, tc.values)
			t.Run("pods", func(t *testing.T) { checkPods(t, m) })
			t.Run("configs", func(t *testing.T) { checkConfigs(t, m) })
			t.Run("sinks", func(t *testing.T) { checkSinks(t, m, vals) })
			t.Run("autoscaling", func(t *testing.T) { checkAutoscaling(t, m, vals) })
			t.Run("admin", func(t *testing.T) { checkAdminExposure(t, m) })
			t.Run("rules", func(t *testing.T) { checkRules(t, m, vals) })
		})
	}
}

// effectiveValues are the case's values over the chart's values.yaml.
func effectiveValues(t *testing.T, vals map[string]any) map[string]any {
	t.Helper()
	def := readValues(t, filepath.Join(chartDir, "values.yaml"))
	return merge(def, vals)
}

// merge is Helm's coalescing for the tests' needs: maps merge, the
// rest (lists too) is replaced.
func merge(dst, src map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = merge(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// checkPods: every container runs as non-root on a read-only root file
// system without capabilities and with resources; the sluice container's
// probes ask the admin port's /readyz and /healthz; the grace period
// exceeds the 30 s drain; the config is checked by an initContainer and
// its checksum annotates the pod; the selectors select the pods.
func checkPods(t *testing.T, m *manifest) {
	for _, w := range m.workloads {
		spec := w.template.Spec
		podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
		all := append(slices.Clone(spec.InitContainers), spec.Containers...)
		for _, c := range all {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: container %s has no securityContext", w, c.Name)
				continue
			}
			if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
				t.Errorf("%s: container %s may run as root", w, c.Name)
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 || spec.SecurityContext != nil && spec.SecurityContext.RunAsUser != nil && *spec.SecurityContext.RunAsUser == 0 {
				t.Errorf("%s: container %s runs as uid 0", w, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s has a writable root file system", w, c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: container %s may escalate privileges", w, c.Name)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: container %s does not drop ALL capabilities", w, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: container %s lacks a cpu or memory request or a memory limit: %v", w, c.Name, c.Resources)
			}
		}

		c := w.container(t)
		_, _, cfg := m.config(t, w)
		_, adminPort, err := net.SplitHostPort(str(lookup(cfg, "admin", "listen")))
		if err != nil {
			t.Fatalf("%s: admin.listen: %v", w, err)
		}
		var named int32
		for _, p := range c.Ports {
			if p.Name == "admin" {
				named = p.ContainerPort
			}
		}
		if strconv.Itoa(int(named)) != adminPort {
			t.Errorf("%s: container port admin %d, but the config's admin.listen is on %s", w, named, adminPort)
		}
		for _, p := range []struct {
			probe *corev1.Probe
			path  string
		}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
				t.Errorf("%s: probe %+v, want GET %s on port admin", w, p.probe, p.path)
			}
		}
		if g := spec.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want more than the 30 s drain", w, g)
		}

		if len(spec.InitContainers) == 0 || spec.InitContainers[0].Name != "check" {
			t.Errorf("%s: no initContainer check", w)
		} else if ic := spec.InitContainers[0]; ic.Image != c.Image || !slices.Equal(ic.Args, []string{"check", "-c", "/etc/sluice/sluice.yaml"}) {
			t.Errorf("%s: initContainer check runs %s %v, want %s check -c /etc/sluice/sluice.yaml", w, ic.Image, ic.Args, c.Image)
		} else {
			// It sees every file the sluice container's config may name.
			for _, vm := range c.VolumeMounts {
				if strings.HasPrefix(vm.MountPath, "/etc/sluice/") && vm.MountPath != "/etc/sluice/rules" &&
					!slices.ContainsFunc(ic.VolumeMounts, func(x corev1.VolumeMount) bool {
						return x.Name == vm.Name && x.MountPath == vm.MountPath && x.SubPath == vm.SubPath
					}) {
					t.Errorf("%s: initContainer check lacks the mount %s", w, vm.MountPath)
				}
			}
		}

		// The config is read at start only: its checksum restarts the pod;
		// rules, tokens and certificates reload, so no checksum of them.
		_, data, _ := m.config(t, w)
		sum := sha256.Sum256([]byte(data))
		if got := w.template.Annotations["checksum/config"]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: checksum/config %q, want the sha256 of its config %x", w, got, sum)
		}
		for k := range w.template.Annotations {
			if strings.HasPrefix(k, "checksum/") && k != "checksum/config" {
				t.Errorf("%s: annotation %s restarts the pod for what it reloads itself", w, k)
			}
		}

		comp := w.template.Labels["app.kubernetes.io/component"]
		var gomemlimit bool
		for _, e := range c.Env {
			gomemlimit = gomemlimit || e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
		}
		if want := comp == "worker" || comp == "sink"; gomemlimit != want {
			t.Errorf("%s: GOMEMLIMIT from limits.memory: %v, want %v", w, gomemlimit, want)
		}

		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.template.Labels)) {
			t.Errorf("%s: selector %v does not select its pods (%v): %v", w, w.selector, w.template.Labels, err)
		}
		for _, tsc := range spec.TopologySpreadConstraints {
			s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || !s.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("%s: topologySpreadConstraint %s does not select the workload's pods", w, tsc.TopologyKey)
			}
		}
		for _, o := range m.workloads {
			if o.name != w.name && sel.Matches(labels.Set(o.template.Labels)) {
				t.Errorf("%s's selector also selects the pods of %s", w, o)
			}
		}
	}
}

// checkConfigs runs `sluice check` on the config of every workload, with
// each file the config names (tokens, TLS, Kafka and sink secrets)
// present where the pod mounts it: every such file must lie on one of the
// pod's volumes, and every Secret the pod mounts must hold one of them.
func checkConfigs(t *testing.T, m *manifest) {
	bin := sluice(t)
	cert, key := selfSigned(t)
	for _, w := range m.workloads {
		c := w.container(t)
		k, data, cfg := m.config(t, w)
		if lookup(cfg, "admin", "pprof") == true {
			t.Errorf("%s: the config serves pprof", w)
		}
		// A pod mounts the Secrets its config names, and no others.
		files := namedFiles(cfg, "")
		for _, vm := range c.VolumeMounts {
			i := slices.IndexFunc(w.template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
			if i < 0 || w.template.Spec.Volumes[i].Secret == nil {
				continue
			}
			if !slices.ContainsFunc(files, func(f namedFile) bool { return strings.HasPrefix(f.path, strings.TrimSuffix(vm.MountPath, "/")+"/") }) {
				t.Errorf("%s: mounts Secret %s at %s, but its config names no file there", w, w.template.Spec.Volumes[i].Secret.SecretName, vm.MountPath)
			}
		}
		root := t.TempDir()
		for _, f := range files {
			if !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.SubPath == "" && strings.HasPrefix(f.path, strings.TrimSuffix(vm.MountPath, "/")+"/")
			}) {
				t.Errorf("%s: %s names %s, which no volume of the pod holds", w, f.key, f.path)
			}
			content := map[string][]byte{"ca_file": cert, "cert_file": cert, "key_file": key,
				"tokens_file": []byte("tokens:\n  - token: t0k3n-alpha-0123456\n    tenant: team-a\n")}[f.key]
			if content == nil {
				content = []byte("s3cret\n")
			}
			p := filepath.Join(root, f.path)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// The pod's absolute paths, under root.
		moved, err := yaml.Marshal(rebase(cfg, root))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, k)
		os.WriteFile(path, moved, 0o644)
		if out, err := exec.Command(bin, "check", "-c", path).CombinedOutput(); err != nil {
			t.Errorf("%s: sluice check rejects its config %s: %v\n%s\n--- config:\n%s", w, k, err, out, data)
		}
	}
}

type namedFile struct{ key, path string }

// namedFiles are the files a config names (keys ending in _file).
func namedFiles(v any, key string) []namedFile {
	var out []namedFile
	switch x := v.(type) {
	case map[string]any:
		for k, v := range x {
			out = append(out, namedFiles(v, k)...)
		}
	case []any:
		for _, v := range x {
			out = append(out, namedFiles(v, key)...)
		}
	case string:
		if strings.HasSuffix(key, "_file") && x != "" {
			out = append(out, namedFile{key, x})
		}
	}
	return out
}

// rebase puts every absolute path of a config under root.
func rebase(v any, root string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, v := range x {
			out[k] = rebase(v, root)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = rebase(v, root)
		}
		return out
	case string:
		if strings.HasPrefix(x, "/") {
			return filepath.Join(root, x)
		}
	}
	return v
}

// selfSigned is a PEM certificate and its key.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// checkSinks: in mode distributed, one workload per configured sink, each
// running `sluice sink --name <name>` with a config that holds that sink
// alone; a file sink is a StatefulSet whose claim is mounted at its path.
// No other workload's config holds sinks. In mode single, one workload.
func checkSinks(t *testing.T, m *manifest, vals map[string]any) {
	sinks, _ := vals["sinks"].([]any)
	if vals["mode"] == "single" {
		if len(m.workloads) != 1 {
			t.Fatalf("mode single: workloads %v, want one", m.workloads)
		}
		w := m.workloads[0]
		if w.kind != "StatefulSet" || w.replicas == nil || *w.replicas != 1 || !slices.Equal(w.container(t).Args, []string{"run", "-c", "/etc/sluice/sluice.yaml"}) {
			t.Errorf("mode single: %s replicas %v args %v, want one StatefulSet replica of sluice run", w, w.replicas, w.container(t).Args)
		}
		_, _, cfg := m.config(t, w)
		if got, _ := cfg["sinks"].([]any); len(got) != len(sinks) {
			t.Errorf("mode single: the config holds %d sinks, want %d", len(got), len(sinks))
		}
		return
	}
	seen := map[string]bool{}
	for _, w := range m.workloads {
		name := w.template.Labels["sluice.dev/sink"]
		_, _, cfg := m.config(t, w)
		got, _ := cfg["sinks"].([]any)
		if name == "" {
			if len(got) > 0 {
				t.Errorf("%s: its config holds sinks %v", w, got)
			}
			continue
		}
		if seen[name] {
			t.Errorf("sink %s: more than one workload", name)
		}
		seen[name] = true
		if args := w.container(t).Args; !slices.Equal(args, []string{"sink", "-c", "/etc/sluice/sluice.yaml", "--name", name}) {
			t.Errorf("%s: args %v, want sink -c /etc/sluice/sluice.yaml --name %s", w, args, name)
		}
		if len(got) != 1 || str(lookup(got[0], "name")) != name {
			t.Errorf("%s: its config holds sinks %v, want %s alone", w, got, name)
			continue
		}
		if lookup(got[0], "type") == "file" {
			path := str(lookup(got[0], "path"))
			mounted := slices.ContainsFunc(w.container(t).VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.MountPath == path && slices.ContainsFunc(w.claims, func(c corev1.PersistentVolumeClaim) bool { return c.Name == vm.Name })
			})
			if w.kind != "StatefulSet" || !mounted {
				t.Errorf("%s: a file sink must be a StatefulSet with a claim mounted at %s", w, path)
			}
		} else if w.kind != "Deployment" {
			t.Errorf("%s: want a Deployment", w)
		}
	}
	for _, s := range sinks {
		name := str(lookup(s, "name"))
		if !seen[name] {
			t.Errorf("sink %s: no workload", name)
		}
		delete(seen, name)
	}
	for name := range seen {
		t.Errorf("workload of sink %s, which is not configured", name)
	}
}

// checkAutoscaling: a workload has at most one autoscaler (HPA or KEDA),
// and then no replicas of its own; KEDA's triggers are the workers' group
// on the raw topics at the configured lag.
func checkAutoscaling(t *testing.T, m *manifest, vals map[string]any) {
	targets := map[string]int{}
	for _, h := range m.hpas {
		targets[h.Spec.ScaleTargetRef.Kind+" "+h.Spec.ScaleTargetRef.Name]++
		if h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HPA %s: not on CPU", h.Name)
		}
	}
	for _, s := range m.scaled {
		targets[s.Spec.ScaleTargetRef.Kind+" "+s.Spec.ScaleTargetRef.Name]++
	}
	for target, n := range targets {
		i := slices.IndexFunc(m.workloads, func(w workload) bool { return w.String() == target })
		if i < 0 {
			t.Errorf("an autoscaler targets %s, which the chart does not render", target)
			continue
		}
		if n > 1 {
			t.Errorf("%s: %d autoscalers", target, n)
		}
		if m.workloads[i].replicas != nil {
			t.Errorf("%s: replicas %d beside its autoscaler", target, *m.workloads[i].replicas)
		}
	}
	keda, _ := lookup(vals, "worker", "keda", "enabled").(bool)
	if vals["mode"] == "single" {
		keda = false
	}
	if keda != (len(m.scaled) == 1) {
		t.Fatalf("worker.keda.enabled %v: %d ScaledObjects", keda, len(m.scaled))
	}
	if !keda {
		return
	}
	s := m.scaled[0]
	var worker workload
	for _, w := range m.workloads {
		if w.template.Labels["app.kubernetes.io/component"] == "worker" {
			worker = w
		}
	}
	if s.Spec.ScaleTargetRef.Name != worker.name {
		t.Errorf("ScaledObject targets %s, want the workers %s", s.Spec.ScaleTargetRef.Name, worker.name)
	}
	_, _, cfg := m.config(t, worker)
	group := str(lookup(cfg, "worker", "group"))
	if group == "" {
		group = "sluice-worker"
	}
	prefix := str(lookup(cfg, "bus", "topic_prefix"))
	var brokers []string
	for _, b := range lookup(cfg, "bus", "kafka", "brokers").([]any) {
		brokers = append(brokers, str(b))
	}
	var topics []string
	for _, tr := range s.Spec.Triggers {
		md := tr.Metadata
		if tr.Type != "kafka" || md["consumerGroup"] != group || md["bootstrapServers"] != strings.Join(brokers, ",") ||
			md["lagThreshold"] != fmt.Sprint(lookup(vals, "worker", "keda", "lagThreshold")) {
			t.Errorf("trigger %+v, want kafka, group %s, brokers %v, lag %v", tr, group, brokers, lookup(vals, "worker", "keda", "lagThreshold"))
		}
		topics = append(topics, md["topic"])
	}
	if want := []string{prefix + ".raw.metrics", prefix + ".raw.logs", prefix + ".raw.traces"}; !slices.Equal(topics, want) {
		t.Errorf("KEDA topics %v, want %v", topics, want)
	}
}

// checkAdminExposure: no Service with an address publishes the admin port
// (a headless one for a ServiceMonitor may list it), a NetworkPolicy
// admits only chosen peers to it on every workload, and OTLP stays open
// on the ingesters.
func checkAdminExposure(t *testing.T, m *manifest) {
	for _, s := range m.services {
		for _, p := range s.Spec.Ports {
			if (p.TargetPort.String() == "admin" || p.TargetPort.IntValue() == 9464 || p.Port == 9464) &&
				(s.Spec.ClusterIP != corev1.ClusterIPNone || s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP) {
				t.Errorf("Service %s publishes the admin port", s.Name)
			}
		}
	}
	for _, w := range m.workloads {
		pod := labels.Set(w.template.Labels)
		var guarded, admitted, otlp bool
		for _, np := range m.policies {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil || sel.Empty() || !sel.Matches(pod) {
				continue
			}
			guarded = true
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					switch p.Port.String() {
					case "admin", "9464":
						if len(rule.From) == 0 {
							t.Errorf("NetworkPolicy %s opens the admin port of %s to everyone", np.Name, w)
						}
						admitted = admitted || slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool { return p.NamespaceSelector != nil })
					case "otlp-grpc", "otlp-http", "4317", "4318":
						otlp = otlp || len(rule.From) == 0
					}
				}
			}
		}
		if !guarded {
			t.Errorf("no NetworkPolicy selects %s: its admin port is open to the cluster", w)
		} else if !admitted {
			t.Errorf("%s: no NetworkPolicy admits the scraper's namespace to the admin port", w)
		}
		serves := slices.ContainsFunc(w.container(t).Ports, func(p corev1.ContainerPort) bool { return p.Name == "otlp-grpc" })
		if serves && !otlp {
			t.Errorf("%s: its OTLP ports are not open", w)
		}
	}
}

// checkRules: the workers read their rules from a mounted ConfigMap or a
// git-sync checkout at the config's rules.dir, and the rule files pass
// `sluice rules check`.
func checkRules(t *testing.T, m *manifest, vals map[string]any) {
	gitSync, _ := lookup(vals, "rules", "gitSync", "enabled").(bool)
	for _, w := range m.workloads {
		comp := w.template.Labels["app.kubernetes.io/component"]
		if comp != "worker" && comp != "single" {
			continue
		}
		_, _, cfg := m.config(t, w)
		dir := str(lookup(cfg, "rules", "dir"))
		c := w.container(t)
		var vol string
		for _, vm := range c.VolumeMounts {
			if dir == vm.MountPath || strings.HasPrefix(dir, vm.MountPath+"/") {
				vol = vm.Name
			}
		}
		i := slices.IndexFunc(w.template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vol })
		if i < 0 {
			t.Errorf("%s: rules.dir %s is on no volume", w, dir)
			continue
		}
		v := w.template.Spec.Volumes[i]
		if gitSync {
			if v.EmptyDir == nil || dir != "/git/current/"+str(lookup(vals, "rules", "gitSync", "path")) {
				t.Errorf("%s: rules.dir %s, want a git-sync checkout (/git/current/<path>) on an emptyDir", w, dir)
			}
			// The first checkout before the worker starts (else its first
			// batches would go without rules), then the sidecar.
			for _, cs := range []struct {
				list    []corev1.Container
				name    string
				oneTime bool
			}{{w.template.Spec.InitContainers, "git-sync-init", true}, {w.template.Spec.Containers, "git-sync", false}} {
				j := slices.IndexFunc(cs.list, func(c corev1.Container) bool { return c.Name == cs.name })
				if j < 0 {
					t.Errorf("%s: no container %s", w, cs.name)
					continue
				}
				c := cs.list[j]
				if slices.Contains(c.Args, "--one-time") != cs.oneTime || !slices.Contains(c.Args, "--link=current") || !slices.Contains(c.Args, "--root=/git") {
					t.Errorf("%s: %s args %v", w, cs.name, c.Args)
				}
				if !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == vol && vm.MountPath == "/git" && !vm.ReadOnly }) {
					t.Errorf("%s: %s cannot write the volume %s at /git", w, cs.name, vol)
				}
			}
			continue
		}
		if v.ConfigMap == nil {
			t.Errorf("%s: rules.dir %s is not a ConfigMap", w, dir)
			continue
		}
		cm := m.configs[v.ConfigMap.Name]
		if cm == nil {
			t.Errorf("%s: rules ConfigMap %s not rendered", w, v.ConfigMap.Name)
			continue
		}
		rdir := t.TempDir()
		for name, body := range cm.Data {
			os.WriteFile(filepath.Join(rdir, name), []byte(body), 0o644)
		}
		if out, err := exec.Command(sluice(t), "rules", "check", rdir).CombinedOutput(); err != nil {
			t.Errorf("%s: sluice rules check of ConfigMap %s: %v\n%s", w, cm.Name, err, out)
		}
	}
}
