// Package httpsink is the HTTP client the HTTP-based sinks share
// (Prometheus remote write, Loki, OTLP/HTTP): the common configuration keys
// (url, headers, basic auth, bearer token, TLS, timeout, tenant header,
// retry_after_max), and the sorting of answers, the same for every HTTP sink:
//
//   - 2xx: delivered.
//   - No answer, 408, 429, 5xx: retried with backoff, or after the server's
//     Retry-After when longer, capped at retry_after_max (a Retry-After of a
//     day would otherwise park the sink for a day; the cut is counted in
//     sluice_sink_retry_after_capped_total).
//   - 401, 403, 404, 405: retried with backoff. These blame the sink's
//     credentials or URL, not the data: an expired token or a wrong path
//     must not send the whole stream to the dead-letter topic, where
//     nothing replays it. They are counted in
//     sluice_sink_config_refusals_total{code} for an alert; the bus holds
//     the backlog meanwhile.
//   - Any other 4xx (400 with the backend's reason, 413, 422...): the
//     backend refuses this data and would refuse it again: rejected for
//     good, the records go to the dead-letter topic.
package httpsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
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
	// RetryAfterMax caps the delay a backend may ask for in Retry-After.
	// Default DefaultRetryAfterMax.
	RetryAfterMax time.Duration `yaml:"retry_after_max"`
}

// DefaultRetryAfterMax is the default of retry_after_max: long enough for a
// backend shedding load, short enough that a sink asked to wait a day
// tries again within minutes.
const DefaultRetryAfterMax = 5 * time.Minute

// BasicAuth is a user name and password.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile, instead of Password, names a file holding the password
	// (a mounted Secret), read when the sink starts; one trailing newline
	// is not part of it.
	PasswordFile string `yaml:"password_file"`
}

// Secret is the password: Password, or the content of PasswordFile.
func (b *BasicAuth) Secret() (string, error) {
	if b.PasswordFile == "" {
		return b.Password, nil
	}
	return config.ReadSecretFile(b.PasswordFile)
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
	errs = append(errs, c.CheckBasicAuth(entry)...)
	if _, err := c.TLS.ClientConfig(); err != nil {
		errs = append(errs, entry.Errorf("tls", "%v", err))
	}
	errs = append(errs, c.CheckRetryAfterMax(entry)...)
	return errs
}

// CheckBasicAuth reports a basic_auth with both password and
// password_file, or whose password_file cannot be read (for the sinks that
// check the other keys themselves, such as otlp over gRPC).
func (c *Config) CheckBasicAuth(entry *config.Sink) []error {
	b := c.BasicAuth
	if b == nil {
		return nil
	}
	if b.Password != "" && b.PasswordFile != "" {
		return []error{entry.Errorf("basic_auth.password_file", "password and password_file are exclusive")}
	}
	if _, err := b.Secret(); err != nil {
		return []error{entry.Errorf("basic_auth.password_file", "%v", err)}
	}
	return nil
}

// CheckRetryAfterMax reports a negative retry_after_max (for the sinks that
// check the other keys themselves, such as otlp over gRPC).
func (c *Config) CheckRetryAfterMax(entry *config.Sink) []error {
	if c.RetryAfterMax < 0 {
		return []error{entry.Errorf("retry_after_max", "retry_after_max must not be negative")}
	}
	return nil
}

// CapRetryAfter cuts a server-requested delay d to max (0: the default),
// counting the cut in m (unless m is zero).
func CapRetryAfter(d, max time.Duration, m sinkmetrics.Sink) time.Duration {
	if max <= 0 {
		max = DefaultRetryAfterMax
	}
	if d <= max {
		return d
	}
	if m.RetryAfterCapped != nil {
		m.RetryAfterCapped.Inc()
	}
	return max
}

// Client posts to one URL.
type Client struct {
	cfg     Config
	http    *http.Client
	tenant  string
	metrics sinkmetrics.Sink
}

// New builds the client of a checked config. It counts, in m, refusals
// blaming the configuration and Retry-After delays it cut (a zero m:
// unregistered counters).
func New(c Config, m sinkmetrics.Sink) (*Client, error) {
	if m.RetryAfterCapped == nil {
		m = sinkmetrics.New(nil).For("")
	}
	tlsCfg, err := c.TLS.ClientConfig()
	if err != nil {
		return nil, err
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if b := c.BasicAuth; b != nil && b.PasswordFile != "" {
		pass, err := b.Secret()
		if err != nil {
			return nil, fmt.Errorf("basic_auth password_file: %w", err)
		}
		c.BasicAuth = &BasicAuth{Username: b.Username, Password: pass}
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
	return &Client{cfg: c, http: &http.Client{Transport: tr, Timeout: c.Timeout}, tenant: tenant, metrics: m}, nil
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
// succeed; RetryAfter is the server's Retry-After, if any, capped.
type Error struct {
	Status    int    // 0 when there was no answer
	Body      string // the start of the answer, for logs and the DLQ
	Retryable bool
	// Config: the answer blames the sink's credentials or URL (401, 403,
	// 404, 405), not the data; Retryable too.
	Config bool
	After  time.Duration
	Err    error
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

// IsRejected reports whether err is a permanent refusal of the data (a 4xx
// other than 401, 403, 404, 405, 408 and 429): it should go to the
// dead-letter topic.
func IsRejected(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Retryable
}

// Post sends r and sorts the answer: nil on 2xx, else *Error.
func (c *Client) Post(ctx context.Context, r Request) error {
	_, _, err := c.post(ctx, r, false)
	return err
}

// PostForAnswer is Post that also returns the body of a 2xx answer (up to
// 1 MiB), for protocols that report partial success in it (OTLP/HTTP).
func (c *Client) PostForAnswer(ctx context.Context, r Request) ([]byte, error) {
	answer, _, err := c.post(ctx, r, true)
	return answer, err
}

// PostForHeader is Post that also returns the header of a 2xx answer, for
// protocols that report what was written in it (remote write 2.0).
func (c *Client) PostForHeader(ctx context.Context, r Request) (http.Header, error) {
	_, h, err := c.post(ctx, r, false)
	return h, err
}

func (c *Client) post(ctx context.Context, r Request, keepAnswer bool) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(r.Body))
	if err != nil {
		return nil, nil, &Error{Err: err}
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
			return nil, nil, &Error{Retryable: true, Err: fmt.Errorf("bearer token: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, &Error{Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		var answer []byte
		if keepAnswer {
			answer, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
		return answer, resp.Header, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	e := &Error{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
		e.Retryable, e.Config = true, true
		c.metrics.ConfigRefusals(strconv.Itoa(resp.StatusCode)).Inc()
	case http.StatusTooManyRequests, http.StatusRequestTimeout:
		e.Retryable = true
	default:
		e.Retryable = resp.StatusCode >= 500
	}
	if e.Retryable {
		e.After = CapRetryAfter(retryAfter(resp.Header.Get("Retry-After")), c.cfg.RetryAfterMax, c.metrics)
	}
	return nil, nil, e
}

// retryAfter parses a Retry-After value: seconds or an HTTP date. A
// number of seconds too large for a Duration is the largest Duration (the
// caller caps it).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 64); err == nil {
		if s > uint64(math.MaxInt64/time.Second) {
			return math.MaxInt64
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
