package deploy

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// secretAt is the Secret whose volume the container mounts at a directory
// holding path, and the key path names in it.
func secretAt(w workload, c corev1.Container, path string) (secret, key string) {
	for _, vm := range c.VolumeMounts {
		dir := strings.TrimSuffix(vm.MountPath, "/") + "/"
		if !strings.HasPrefix(path, dir) {
			continue
		}
		for _, v := range w.template.Spec.Volumes {
			if v.Name == vm.Name && v.Secret != nil {
				return v.Secret.SecretName, strings.TrimPrefix(path, dir)
			}
		}
	}
	return "", ""
}

// The Strimzi example wires the cluster CA Secret and the KafkaUser's
// SCRAM-SHA-512 password Secret, as Strimzi names them, into the config of
// every pod, through files: the ConfigMap holds no secret.
func TestStrimziExample(t *testing.T) {
	objs, err := renderChart(loadChart(t), readValues(t, "examples/strimzi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := index(t, objs)
	for _, w := range m.workloads {
		c := w.container(t)
		_, data, cfg := m.config(t, w)
		if brokers := lookup(cfg, "bus", "kafka", "brokers"); !slices.Equal(brokers.([]any), []any{"my-cluster-kafka-bootstrap.kafka:9093"}) {
			t.Errorf("%s: brokers %v", w, brokers)
		}
		ca := str(lookup(cfg, "bus", "kafka", "tls", "ca_file"))
		if s, k := secretAt(w, c, ca); s != "my-cluster-cluster-ca-cert" || k != "ca.crt" {
			t.Errorf("%s: bus.kafka.tls.ca_file %q is key %q of Secret %q, want ca.crt of my-cluster-cluster-ca-cert", w, ca, k, s)
		}
		if mech, user := lookup(cfg, "bus", "kafka", "sasl", "mechanism"), lookup(cfg, "bus", "kafka", "sasl", "username"); mech != "SCRAM-SHA-512" || user != "sluice" {
			t.Errorf("%s: sasl %v %v, want SCRAM-SHA-512 as sluice", w, mech, user)
		}
		pw := str(lookup(cfg, "bus", "kafka", "sasl", "password_file"))
		if s, k := secretAt(w, c, pw); s != "sluice" || k != "password" {
			t.Errorf("%s: bus.kafka.sasl.password_file %q is key %q of Secret %q, want password of sluice", w, pw, k, s)
		}
		if lookup(cfg, "bus", "kafka", "sasl", "password") != nil || strings.Contains(data, "password:") {
			t.Errorf("%s: a password in the config:\n%s", w, data)
		}
		if w.template.Labels["sluice.dev/sink"] == "mimir" {
			sinks, _ := cfg["sinks"].([]any)
			pf := ""
			if len(sinks) == 1 {
				pf = str(lookup(sinks[0], "basic_auth", "password_file"))
			}
			if s, _ := secretAt(w, c, pf); s != "mimir-auth" {
				t.Errorf("%s: basic_auth.password_file %q is not on the Secret mimir-auth", w, pf)
			}
		}
	}
}

// The single-node example is one pod running every role on the embedded
// bus, whose store and the file sink's files are on the claim.
func TestSingleNodeExample(t *testing.T) {
	objs, err := renderChart(loadChart(t), readValues(t, "examples/single-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := index(t, objs)
	if len(m.workloads) != 1 || len(m.hpas) != 0 || len(m.scaled) != 0 {
		t.Fatalf("workloads %v, %d HPAs, %d ScaledObjects; want one workload and no autoscaler", m.workloads, len(m.hpas), len(m.scaled))
	}
	w := m.workloads[0]
	c := w.container(t)
	_, _, cfg := m.config(t, w)
	if lookup(cfg, "bus", "kind") != "embedded" {
		t.Errorf("bus.kind %v, want embedded", lookup(cfg, "bus", "kind"))
	}
	if len(w.claims) != 1 {
		t.Fatalf("%s: claims %v, want one", w, w.claims)
	}
	var mount string
	for _, vm := range c.VolumeMounts {
		if vm.Name == w.claims[0].Name {
			mount = vm.MountPath + "/"
		}
	}
	for _, p := range []string{str(lookup(cfg, "bus", "data_dir")), str(lookup(cfg["sinks"].([]any)[0], "path"))} {
		if mount == "/" || !strings.HasPrefix(p, mount) {
			t.Errorf("%s is not on the claim (mounted at %q)", p, mount)
		}
	}
	if !slices.ContainsFunc(m.services, func(s *corev1.Service) bool {
		return s.Spec.ClusterIP != corev1.ClusterIPNone && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 4317 })
	}) {
		t.Error("no Service for OTLP")
	}
}
