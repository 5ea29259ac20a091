package httpsink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
)

func TestPostSortsAnswers(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	status, retry := 200, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(status)
		io.WriteString(w, "out of order sample\n")
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	c, err := New(Config{URL: srv.URL, Headers: map[string]string{"X-Extra": "1"}, BearerTokenFile: tok}, sinkmetrics.Sink{})
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Body: []byte("payload"), ContentType: "application/x-protobuf", ContentEncoding: "snappy", Tenant: "team-a",
		Headers: map[string]string{"X-Prometheus-Remote-Write-Version": "0.1.0"}}
	if err := c.Post(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Scope-Orgid": "team-a",
		"Authorization": "Bearer s3cret", "X-Extra": "1", "X-Prometheus-Remote-Write-Version": "0.1.0"} {
		if got.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	if string(gotBody) != "payload" {
		t.Errorf("body %q", gotBody)
	}

	status, retry = 429, "7"
	err = c.Post(context.Background(), req)
	var e *Error
	if !errors.As(err, &e) || !e.Retryable || e.RetryAfter() != 7*time.Second || IsRejected(err) {
		t.Errorf("429: %#v", err)
	}
	status, retry = 503, ""
	if err := c.Post(context.Background(), req); IsRejected(err) || !errors.As(err, &e) || !e.Retryable {
		t.Errorf("503: %v", err)
	}
	status = 400
	err = c.Post(context.Background(), req)
	if !IsRejected(err) || err.Error() != "HTTP 400: out of order sample" {
		t.Errorf("400: %v", err)
	}
	srv.Close()
	if err := c.Post(context.Background(), req); IsRejected(err) || !errors.As(err, &e) || !e.Retryable || e.Status != 0 {
		t.Errorf("server down: %v", err)
	}
}

func TestRetryAfterForms(t *testing.T) {
	if d := retryAfter("120"); d != 2*time.Minute {
		t.Errorf("seconds: %v", d)
	}
	if d := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); d < 59*time.Minute {
		t.Errorf("date: %v", d)
	}
	if d := retryAfter("soon"); d != 0 {
		t.Errorf("garbage: %v", d)
	}
}

// basic_auth.password_file keeps the password out of the config: the sink
// reads it at start and sends it; both password and password_file, or a
// file that cannot be read, are refused at the key.
func TestBasicAuthPasswordFile(t *testing.T) {
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "password")
	os.WriteFile(file, []byte("s3cret\n"), 0o600)
	c, err := New(Config{URL: srv.URL, BasicAuth: &BasicAuth{Username: "u", PasswordFile: file}}, sinkmetrics.Sink{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Post(context.Background(), Request{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if user != "u" || pass != "s3cret" {
		t.Errorf("basic auth %q:%q, want u:s3cret", user, pass)
	}

	entry := &config.Sink{Name: "s", Type: "loki", Path: "sinks[0]"}
	for _, tc := range []struct {
		auth BasicAuth
		want string
	}{
		{BasicAuth{Username: "u", Password: "p", PasswordFile: file}, "sinks[0].basic_auth.password_file: password and password_file are exclusive"},
		{BasicAuth{Username: "u", PasswordFile: file + ".missing"}, "sinks[0].basic_auth.password_file: open " + file + ".missing: no such file or directory"},
		{BasicAuth{Username: "u", PasswordFile: os.DevNull}, "sinks[0].basic_auth.password_file: " + os.DevNull + ": empty"},
	} {
		cfg := Config{URL: srv.URL, BasicAuth: &tc.auth}
		errs := cfg.Check(entry)
		if len(errs) != 1 || !strings.HasSuffix(errs[0].Error(), tc.want) {
			t.Errorf("%+v: %v, want %s", tc.auth, errs, tc.want)
		}
	}
	if _, err := New(Config{URL: srv.URL, BasicAuth: &BasicAuth{Username: "u", PasswordFile: file + ".missing"}}, sinkmetrics.Sink{}); err == nil {
		t.Error("New with an unreadable password_file: no error")
	}
}

// TestPostForHeader: the header of a 2xx answer comes back (remote write
// 2.0 reports what it wrote in it); a refusal is an *Error as with Post.
func TestPostForHeader(t *testing.T) {
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "7")
		w.WriteHeader(status)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL}, sinkmetrics.Sink{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.PostForHeader(context.Background(), Request{Body: []byte("x"), ContentType: "application/x-protobuf"})
	if err != nil || h.Get("X-Prometheus-Remote-Write-Samples-Written") != "7" {
		t.Fatalf("2xx: header %v, %v", h, err)
	}
	status = http.StatusBadRequest
	h, err = c.PostForHeader(context.Background(), Request{Body: []byte("x"), ContentType: "application/x-protobuf"})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !IsRejected(err) || h != nil {
		t.Fatalf("400: header %v, %v", h, err)
	}
}
