package ingest

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
