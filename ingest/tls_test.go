package ingest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for 127.0.0.1, usable by a server
// and a client.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// OTLP over TLS, with client certificates required (mutual TLS): clients
// with a certificate of the CA are served over HTTP and gRPC; a client
// without one is refused during the handshake.
func TestTLSWithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, 2)
	cliCert, cliKey := ca.issue(t, 3)
	serverTLS, err := LoadTLS(writeFile(t, dir, "srv.pem", srvCert), writeFile(t, dir, "srv.key", srvKey), writeFile(t, dir, "ca.pem", ca.pem))
	if err != nil {
		t.Fatal(err)
	}
	bus := newBus(t, 2)
	ing := newIngester(t, Config{}, bus)
	srv := NewServer(ing, ServerConfig{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", TLS: serverTLS.Config()})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	pair, _ := tls.X509KeyPair(cliCert, cliKey)
	clientTLS := &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{pair}}
	pb := samples(t)[otlpwire.Metrics]

	https := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := https.Post("https://"+srv.HTTPAddr()+PathMetrics, contentTypeProto, bytes.NewReader(pb))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS: status %d", resp.StatusCode)
	}

	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := colmetricspb.NewMetricsServiceClient(conn).Export(context.Background(), metricsRequest(3, 4, 5)); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	if got := busItems(t, bus, otlpwire.Metrics, ""); got != 2*sampleItems[otlpwire.Metrics] {
		t.Errorf("%d items on the bus, want %d", got, 2*sampleItems[otlpwire.Metrics])
	}

	// No client certificate: refused.
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	if resp, err := anon.Post("https://"+srv.HTTPAddr()+PathMetrics, contentTypeProto, bytes.NewReader(pb)); err == nil {
		resp.Body.Close()
		t.Errorf("client without a certificate served: %d", resp.StatusCode)
	}
	// Plain text on the TLS port: refused.
	if resp, err := http.Post("http://"+srv.HTTPAddr()+PathMetrics, contentTypeProto, bytes.NewReader(pb)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain-text request served on the TLS port")
		}
	}
}

func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTLS(filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing.key"), ""); err == nil {
		t.Error("missing files accepted")
	}
	if _, err := LoadTLS("", filepath.Join(dir, "missing.key"), ""); err == nil || !strings.Contains(err.Error(), "both a certificate and a key file are required") {
		t.Errorf("no certificate file: %v", err)
	}
	ca := newTestCA(t)
	c, k := ca.issue(t, 2)
	if _, err := LoadTLS(writeFile(t, dir, "c.pem", c), writeFile(t, dir, "k.pem", k), writeFile(t, dir, "ca.pem", []byte("not a certificate"))); err == nil {
		t.Error("a CA file without certificates accepted")
	}
}
