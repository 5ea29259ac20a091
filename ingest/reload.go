package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/reload"
)

// TLSFiles serves TLS from certificate, key and CA files that may be
// replaced while the servers run: Config reads the current certificate
// (and client CA bundle) at every handshake, and Reload swaps them.
type TLSFiles struct {
	cert, key, ca string
	cur           atomic.Pointer[tls.Config]
}

// LoadTLS reads the PEM certificate and key, and when ca is not empty the
// CA bundle client certificates must chain to (mutual TLS).
func LoadTLS(cert, key, ca string) (*TLSFiles, error) {
	if cert == "" || key == "" {
		return nil, errors.New("ingest TLS: both a certificate and a key file are required")
	}
	f := &TLSFiles{cert: cert, key: key, ca: ca}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again; on error the previous ones stay in use.
func (f *TLSFiles) Reload() error {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil { // crypto/tls names neither file
		return fmt.Errorf("ingest TLS: certificate %s, key %s: %w", f.cert, f.key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"}} // as the servers would set them
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return fmt.Errorf("ingest TLS: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ingest TLS: no certificates in %s", f.ca)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	f.cur.Store(cfg)
	return nil
}

// Config is the servers' TLS configuration: each handshake uses the files
// last loaded.
func (f *TLSFiles) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return f.cur.Load(), nil }}
}

func (f *TLSFiles) files() []string { return []string{f.cert, f.key, f.ca} }

// Reloader keeps an Ingester's tokens and a server's TLS files current: it
// reloads them when their files change (checked every interval, by size,
// modification time and name) or when told to (SIGHUP). A file that does
// not load leaves the previous tokens or certificate in use and is logged
// with its file and line. Each reload is counted in the ingester's
// sluice_ingest_reloads_total{file,result}, and
// sluice_ingest_reload_success{file} says whether the last one loaded
// (file "tokens" or "tls").
type Reloader struct {
	ing        *Ingester
	tokensPath string
	tls        *TLSFiles
	log        *slog.Logger
	tokStamp   [sha256.Size]byte
	tlsStamp   [sha256.Size]byte
	warned     bool
}

// The file label of the reload metrics.
const (
	reloadTokens = "tokens"
	reloadTLS    = "tls"
)

// NewReloader watches tokensPath ("" for none) and tls (nil for none);
// tokens read from tokensPath must already be in ing.
func NewReloader(ing *Ingester, tokensPath string, tls *TLSFiles, log *slog.Logger) *Reloader {
	r := &Reloader{ing: ing, tokensPath: tokensPath, tls: tls, log: log}
	if tokensPath != "" {
		r.tokStamp = reload.Stamp(tokensPath)
		ing.m.loaded(reloadTokens)
	}
	if tls != nil {
		r.tlsStamp = reload.Stamp(tls.files()...)
		ing.m.loaded(reloadTLS)
	}
	return r
}

// WarnLegacy logs, once, that toks come from a one-token-per-line file.
func (r *Reloader) WarnLegacy(toks *Tokens) {
	if toks != nil && toks.Legacy() && !r.warned {
		r.warned = true
		r.log.Warn("the tokens file lists one token per line: its tokens are bound to no tenant and write as default_tenant only; list them with their tenants in the YAML format (README, Security: tenants and tokens)", "file", r.tokensPath)
	}
}

// Reload reloads the files that changed since the last load, or all of
// them when force is set. It returns the errors of the files that did not
// load.
func (r *Reloader) Reload(force bool) error {
	var errs []error
	if r.tokensPath != "" {
		if st := reload.Stamp(r.tokensPath); force || st != r.tokStamp {
			r.tokStamp = st // a broken file is reported once, until it changes again
			toks, err := LoadTokens(r.tokensPath)
			if err != nil {
				r.log.Error("tokens not reloaded; the previous tokens stay in use", "file", r.tokensPath, "err", err)
				errs = append(errs, err)
			} else {
				r.ing.SetTokens(toks)
				r.WarnLegacy(toks)
				r.log.Info("tokens reloaded", "file", r.tokensPath, "tokens", toks.Len())
			}
			r.ing.m.reloaded(reloadTokens, err)
		}
	}
	if r.tls != nil {
		if st := reload.Stamp(r.tls.files()...); force || st != r.tlsStamp {
			r.tlsStamp = st
			err := r.tls.Reload()
			if err != nil {
				r.log.Error("TLS certificate not reloaded; the previous one stays in use", "err", err)
				errs = append(errs, err)
			} else {
				r.log.Info("TLS certificate reloaded", "cert", r.tls.cert)
			}
			r.ing.m.reloaded(reloadTLS, err)
		}
	}
	return errors.Join(errs...)
}

// Run reloads every interval when the files changed, and at once on hup,
// until ctx ends.
func (r *Reloader) Run(ctx context.Context, interval time.Duration, hup <-chan struct{}) {
	reload.Run(ctx, interval, hup, func(force bool) { r.Reload(force) })
}
