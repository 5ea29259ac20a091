package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Tokens and the TLS certificate are rotated while the server runs: on
// SIGHUP (the hup channel) and on a change seen by the poll, the old token
// is refused and the new one accepted, new connections see the new
// certificate; broken files keep the previous tokens and certificate.
func TestReloadTokensAndCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	c1, k1 := ca.issue(t, 101)
	certPath, keyPath := writeFile(t, dir, "srv.pem", c1), writeFile(t, dir, "srv.key", k1)
	tokPath := writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: old-token\n    tenant: team-a\n"))

	files, err := LoadTLS(certPath, keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	toks, err := LoadTokens(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	bus := newBus(t, 1)
	ing := newIngester(t, Config{Tokens: toks}, bus)
	srv := NewServer(ing, ServerConfig{HTTPListen: "127.0.0.1:0", TLS: files.Config()})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	r := NewReloader(ing, tokPath, files, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan struct{})
	go r.Run(ctx, time.Hour, hup) // only hup reloads here

	pb := samples(t)[otlpwire.Logs]
	// post sends a request on a new connection: its status and the serial
	// of the server's certificate.
	post := func(token string) (int, int64) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "https://"+srv.HTTPAddr()+PathLogs, strings.NewReader(string(pb)))
		req.Header.Set("Content-Type", contentTypeProto)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if code, serial := post("old-token"); code != 200 || serial != 101 {
		t.Fatalf("before: status %d, certificate %d", code, serial)
	}

	// Rotate both, then SIGHUP.
	c2, k2 := ca.issue(t, 102)
	writeFile(t, dir, "srv.pem", c2)
	writeFile(t, dir, "srv.key", k2)
	writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: new-token\n    tenant: team-a\n"))
	hup <- struct{}{}
	hup <- struct{}{} // the first reload is done once the second is received
	if code, serial := post("new-token"); code != 200 || serial != 102 {
		t.Errorf("after SIGHUP: new token status %d, certificate %d; want 200, 102", code, serial)
	}
	if code, _ := post("old-token"); code != 401 {
		t.Errorf("after SIGHUP: old token status %d, want 401", code)
	}

	// Broken files: the poll sees them change and keeps what works.
	writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: newer-token\n    tenant: ../x\n"))
	os.WriteFile(filepath.Join(dir, "srv.pem"), []byte("not a certificate"), 0o600)
	err = r.Reload(false)
	if err == nil || !strings.Contains(err.Error(), "tokens.yaml:3:13: tokens[0].tenant") || !strings.Contains(err.Error(), "ingest TLS") {
		t.Errorf("reload of broken files: %v, want the tokens file's line and the TLS error", err)
	}
	if code, serial := post("new-token"); code != 200 || serial != 102 {
		t.Errorf("after broken files: status %d, certificate %d; want 200, 102", code, serial)
	}
	// Fixed again: the poll loads them.
	c3, k3 := ca.issue(t, 103)
	writeFile(t, dir, "srv.pem", c3)
	writeFile(t, dir, "srv.key", k3)
	writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: newest-token\n    tenant: team-a\n"))
	if err := r.Reload(false); err != nil {
		t.Fatal(err)
	}
	if code, serial := post("newest-token"); code != 200 || serial != 103 {
		t.Errorf("after the poll: status %d, certificate %d; want 200, 103", code, serial)
	}
	if code, _ := post("new-token"); code != 401 {
		t.Errorf("after the poll: previous token status %d, want 401", code)
	}
}

// The reload metrics follow real reloads of each file: good at start,
// broken (the previous tokens and certificate stay), fixed again. Each
// write changes the file's size, so the poll sees it whatever the
// resolution of modification times.
func TestReloadMetrics(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	c1, k1 := ca.issue(t, 201)
	certPath, keyPath := writeFile(t, dir, "srv.pem", c1), writeFile(t, dir, "srv.key", k1)
	tokPath := writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: tok-1\n    tenant: team-a\n"))
	files, err := LoadTLS(certPath, keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	toks, err := LoadTokens(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ing := newIngester(t, Config{Tokens: toks, Registerer: reg}, newBus(t, 1))
	r := NewReloader(ing, tokPath, files, quietLogger())

	// expect compares the reload counters and success gauges with
	// tokens and tls: ok reloads, error reloads, success.
	expect := func(step string, tokens, tls [3]int) {
		t.Helper()
		var b strings.Builder
		b.WriteString("# HELP sluice_ingest_reload_success 1 if the last load of the file (tokens or tls) succeeded, 0 if it failed and the previous one is still in use.\n# TYPE sluice_ingest_reload_success gauge\n")
		fmt.Fprintf(&b, "sluice_ingest_reload_success{file=\"tls\"} %d\nsluice_ingest_reload_success{file=\"tokens\"} %d\n", tls[2], tokens[2])
		b.WriteString("# HELP sluice_ingest_reloads_total Reloads of the tokens file (file=\"tokens\") and the TLS certificate, key and CA (file=\"tls\"), by result (ok or error; an error keeps the previous ones in use).\n# TYPE sluice_ingest_reloads_total counter\n")
		for _, f := range []struct {
			name string
			v    [3]int
		}{{"tls", tls}, {"tokens", tokens}} {
			fmt.Fprintf(&b, "sluice_ingest_reloads_total{file=%q,result=\"error\"} %d\nsluice_ingest_reloads_total{file=%q,result=\"ok\"} %d\n", f.name, f.v[1], f.name, f.v[0])
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(b.String()), "sluice_ingest_reloads_total", "sluice_ingest_reload_success"); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	lastSuccess := func(file string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "sluice_ingest_last_reload_success_timestamp_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == file {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no sluice_ingest_last_reload_success_timestamp_seconds{file=%q}", file)
		return 0
	}
	expect("at start", [3]int{0, 0, 1}, [3]int{0, 0, 1})
	startTokens, startTLS := lastSuccess("tokens"), lastSuccess("tls")
	if startTokens == 0 || startTLS == 0 {
		t.Errorf("last success at start: tokens %v, tls %v", startTokens, startTLS)
	}

	writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: tok-22\n    tenant: team-a\n"))
	if err := r.Reload(false); err != nil {
		t.Fatal(err)
	}
	expect("good tokens", [3]int{1, 0, 1}, [3]int{0, 0, 1})

	writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: tok-333\n    tenant: ../x\n"))
	if err := r.Reload(false); err == nil {
		t.Fatal("broken tokens file loaded")
	}
	expect("broken tokens", [3]int{1, 1, 0}, [3]int{0, 0, 1})
	okTokens := lastSuccess("tokens")

	os.WriteFile(certPath, []byte("not a certificate"), 0o600)
	if err := r.Reload(false); err == nil {
		t.Fatal("broken certificate loaded")
	}
	expect("broken certificate", [3]int{1, 1, 0}, [3]int{0, 1, 0})
	if got := lastSuccess("tokens"); got != okTokens {
		t.Errorf("last tokens success moved from %v to %v without a successful load", okTokens, got)
	}
	if got := lastSuccess("tls"); got != startTLS {
		t.Errorf("last tls success moved from %v to %v without a successful load", startTLS, got)
	}

	c2, k2 := ca.issue(t, 202)
	writeFile(t, dir, "srv.pem", c2)
	writeFile(t, dir, "srv.key", k2)
	writeFile(t, dir, "tokens.yaml", []byte("tokens:\n  - token: tok-4444\n    tenant: team-a\n"))
	if err := r.Reload(false); err != nil {
		t.Fatal(err)
	}
	expect("fixed", [3]int{2, 1, 1}, [3]int{1, 1, 1})
	if got := lastSuccess("tls"); got < startTLS {
		t.Errorf("last tls success %v, before the start's %v", got, startTLS)
	}
}
