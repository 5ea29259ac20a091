package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// selfSigned is a PEM certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
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

// sluice check reads the tokens file and the TLS files of the ingest
// section as the ingester would: a broken one fails the check (exit 1)
// with the config's line and the tokens file's line and column, and the
// tokens are never shown.
func TestCheckLoadsTheTokensAndTLSFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key := selfSigned(t)
	_, otherKey := selfSigned(t)
	cfg := write("sluice.yaml", fmt.Sprintf(`bus:
  kind: embedded
  data_dir: %q
ingest:
  tokens_file: %q
  tls: {cert_file: %q, key_file: %q}
`, dir, filepath.Join(dir, "tokens.yaml"), filepath.Join(dir, "srv.pem"), filepath.Join(dir, "srv.key")))
	tokens := write("tokens.yaml", "tokens:\n  - token: s3cr3t-alpha-0123\n    tenant: ../x\n  - token: s3cr3t-alpha-0123\n    tenant: team-b\n")
	write("srv.pem", string(cert))
	write("srv.key", string(otherKey))

	stdout, stderr, code := sluiceCLI(t, "check -c "+cfg)
	if code == 0 {
		t.Fatalf("broken tokens and TLS files: exit 0\n%s%s", stdout, stderr)
	}
	for _, want := range []string{
		cfg + ":5:16: ingest.tokens_file: " + tokens + `:3:13: tokens[0].tenant: invalid tenant "../x"`,
		tokens + ":4:12: tokens[1].token: the same token as the entry at line 2",
		cfg + ":6:8: ingest.tls: ingest TLS: certificate " + filepath.Join(dir, "srv.pem") + ", key " + filepath.Join(dir, "srv.key") + ": tls: private key does not match public key",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("output does not contain %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stdout+stderr, "s3cr3t") {
		t.Errorf("a token is shown:\n%s%s", stdout, stderr)
	}

	write("tokens.yaml", "tokens:\n  - token: s3cr3t-alpha-0123\n    tenant: team-a\n")
	write("srv.key", string(key))
	if stdout, stderr, code := sluiceCLI(t, "check -c "+cfg); code != 0 || !strings.Contains(stdout, cfg+": ok") {
		t.Errorf("good files: exit %d\n%s%s", code, stdout, stderr)
	}
}

// sluice check reads the Kafka bus's TLS files and SASL password_file as
// the bus would at start (no broker is contacted): a missing one fails the
// check at its key.
func TestCheckLoadsTheKafkaSecretFiles(t *testing.T) {
	dir := t.TempDir()
	cert, _ := selfSigned(t)
	ca := filepath.Join(dir, "ca.crt")
	pass := filepath.Join(dir, "password")
	cfg := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`bus:
  kind: kafka
  kafka:
    brokers: [kafka:9093]
    tls: {ca_file: %q}
    sasl: {mechanism: SCRAM-SHA-512, username: sluice, password_file: %q}
`, ca, pass)), 0o644)
	_, err := run(t, "check", "-c", cfg)
	for _, want := range []string{cfg + ":5:10: bus.kafka.tls: open " + ca, cfg + ":6:71: bus.kafka.sasl.password_file: open " + pass} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing files: %v\nwant %q", err, want)
		}
	}
	os.WriteFile(ca, cert, 0o644)
	os.WriteFile(pass, []byte("s3cret\n"), 0o600)
	if out, err := run(t, "check", "-c", cfg); err != nil {
		t.Errorf("present files: %v %s", err, out)
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
