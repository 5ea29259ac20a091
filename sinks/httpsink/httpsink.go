// Package httpsink is the HTTP client the HTTP-based sinks share
// (Prometheus remote write, Loki, OTLP/HTTP): the common configuration keys
// (url, headers, basic auth, bearer token, TLS, timeout, tenant header), and
// the sorting of answers into delivered, retryable (connection errors, 429,
// 5xx; with the server's Retry-After) and rejected for good (other 4xx).
package httpsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
)

// Config is the part of a sink entry every HTTP sink has.
type Config struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	// BasicAuth and the bearer token are exclusive.
	BasicAuth *BasicAuth `yaml:"basic_auth"`
	// BearerToken, or BearerTokenFile read at every request (so that a
	// rotated token is picked up).
	BearerToken     string        `yaml:"bearer_token"`
	BearerTokenFile string        `yaml:"bearer_token_file"`
	TLS             *config.TLS   `yaml:"tls"`
	Timeout         time.Duration `yaml:"timeout"` // per request; default 30s
	// TenantHeader carries the record's tenant (sluice-tenant) to the
	// backend. Default X-Scope-OrgID; "none" sends no tenant header.
	TenantHeader string `yaml:"tenant_header"`
}

// BasicAuth is a user name and password.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Check reports what is wrong with c, as errors located at entry's keys.
func (c *Config) Check(entry *config.Sink) []error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, entry.Errorf("url", "the %s sink needs a url", entry.Type))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, entry.Errorf("url", "url %q must be an http:// or https:// URL", c.URL))
	}
	if c.BasicAuth != nil && (c.BearerToken != "" || c.BearerTokenFile != "") {
		errs = append(errs, entry.Errorf("basic_auth", "basic_auth and a bearer token are exclusive"))
	}
	if c.BearerToken != "" && c.BearerTokenFile != "" {
		errs = append(errs, entry.Errorf("bearer_token_file", "bearer_token and bearer_token_file are exclusive"))
	}
	if _, err := c.TLS.ClientConfig(); err != nil {
		errs = append(errs, entry.Errorf("tls", "%v", err))
	}
	return errs
}

// Client posts to one URL.
type Client struct {
	cfg    Config
	http   *http.Client
	tenant string
}

// New builds the client of a checked config.
func New(c Config) (*Client, error) {
	tlsCfg, err := c.TLS.ClientConfig()
	if err != nil {
		return nil, err
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 64
	tenant := c.TenantHeader
	switch tenant {
	case "":
		tenant = "X-Scope-OrgID"
	case "none":
		tenant = ""
	}
	return &Client{cfg: c, http: &http.Client{Transport: tr, Timeout: c.Timeout}, tenant: tenant}, nil
}

// Request is one POST.
type Request struct {
	Body            []byte
	ContentType     string
	ContentEncoding string
	Tenant          string            // sent in the tenant header when set
	Headers         map[string]string // protocol headers, e.g. X-Prometheus-Remote-Write-Version
}

// Error is a failed POST. Retryable says whether sending it again may
// succeed; RetryAfter is the server's Retry-After, if any.
type Error struct {
	Status    int    // 0 when there was no answer
	Body      string // the start of the answer, for logs and the DLQ
	Retryable bool
	After     time.Duration
	Err       error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("no answer: %v", e.Err)
	}
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is the delay the server asked for (0 if none); the stage
// honours it.
func (e *Error) RetryAfter() time.Duration { return e.After }

// IsRejected reports whether err is a permanent refusal (a 4xx other than
// 408 and 429): the data should go to the dead-letter topic.
func IsRejected(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Retryable
}

// Post sends r and sorts the answer: nil on 2xx, else *Error.
func (c *Client) Post(ctx context.Context, r Request) error {
	_, err := c.post(ctx, r, false)
	return err
}

// PostForAnswer is Post that also returns the body of a 2xx answer (up to
// 1 MiB), for protocols that report partial success in it (OTLP/HTTP).
func (c *Client) PostForAnswer(ctx context.Context, r Request) ([]byte, error) {
	return c.post(ctx, r, true)
}

func (c *Client) post(ctx context.Context, r Request, keepAnswer bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(r.Body))
	if err != nil {
		return nil, &Error{Err: err}
	}
	req.Header.Set("Content-Type", r.ContentType)
	if r.ContentEncoding != "" {
		req.Header.Set("Content-Encoding", r.ContentEncoding)
	}
	req.Header.Set("User-Agent", "sluice")
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	if c.tenant != "" && r.Tenant != "" {
		req.Header.Set(c.tenant, r.Tenant)
	}
	switch {
	case c.cfg.BasicAuth != nil:
		req.SetBasicAuth(c.cfg.BasicAuth.Username, c.cfg.BasicAuth.Password)
	case c.cfg.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	case c.cfg.BearerTokenFile != "":
		tok, err := os.ReadFile(c.cfg.BearerTokenFile)
		if err != nil {
			return nil, &Error{Retryable: true, Err: fmt.Errorf("bearer token: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &Error{Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		var answer []byte
		if keepAnswer {
			answer, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
		return answer, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	e := &Error{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		e.Retryable = true
		e.After = retryAfter(resp.Header.Get("Retry-After"))
	}
	return nil, e
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
