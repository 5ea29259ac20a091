package httpsink

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
)

// FuzzAnswer: whatever a backend answers (any status, any Retry-After, any
// body), Post sorts it as the package doc says: 2xx delivered; 401, 403,
// 404, 405, 408, 429 and 5xx retryable; other codes rejected; a delay never
// negative nor above retry_after_max; the error's body at most 1 KiB.
func FuzzAnswer(f *testing.F) {
	for _, c := range []struct {
		status uint16
		after  string
	}{{200, ""}, {204, ""}, {400, ""}, {401, "10"}, {404, ""}, {413, ""}, {429, "7"}, {503, "86400"},
		{503, "Wed, 21 Oct 2099 07:28:00 GMT"}, {500, "-1"}, {502, "99999999999999999999"}, {503, "1e3"}, {302, ""}} {
		f.Add(c.status, c.after, "out of order sample")
	}
	var mu sync.Mutex
	var status int
	var after, body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if after != "" {
			w.Header().Set("Retry-After", after)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	f.Cleanup(srv.Close)
	const max = time.Minute
	c, err := New(Config{URL: srv.URL, RetryAfterMax: max}, sinkmetrics.Sink{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s uint16, a, b string) {
		code := 200 + int(s)%400 // 200 to 599: net/http writes no other
		if strings.ContainsAny(a, "\r\n\x00") || !validHeader(a) {
			a = ""
		}
		mu.Lock()
		status, after, body = code, a, b
		mu.Unlock()
		err := c.Post(context.Background(), Request{Body: []byte("x"), ContentType: "text/plain"})
		if code/100 == 2 {
			if err != nil {
				t.Fatalf("%d: %v", code, err)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%d: %v is not an *Error", code, err)
		}
		if e.Status != code {
			t.Fatalf("status %d, answered %d", e.Status, code)
		}
		retry := code >= 500 || code == 401 || code == 403 || code == 404 || code == 405 || code == 408 || code == 429
		if e.Retryable != retry || IsRejected(err) == retry {
			t.Fatalf("%d: retryable %v, rejected %v", code, e.Retryable, IsRejected(err))
		}
		if e.After < 0 || e.After > max {
			t.Fatalf("%d, Retry-After %q: delay %v", code, a, e.After)
		}
		if len(e.Body) > 1024 {
			t.Fatalf("error body of %d bytes", len(e.Body))
		}
	})
}

// validHeader: a value net/http sends (visible ASCII and spaces).
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// FuzzRetryAfter: any Retry-After value parses to a delay that is never
// negative, and CapRetryAfter never exceeds its cap.
func FuzzRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "120", "86400", "-5", "+5", "1.5", "99999999999999999999", "Wed, 21 Oct 2099 07:28:00 GMT", "Mon, 01 Jan 1990 00:00:00 GMT", "soon"} {
		f.Add(v, int64(time.Minute))
	}
	f.Fuzz(func(t *testing.T, v string, capNanos int64) {
		d := retryAfter(v)
		if d < 0 {
			t.Fatalf("%q: %v", v, d)
		}
		got := CapRetryAfter(d, time.Duration(capNanos), sinkmetrics.Sink{})
		limit := time.Duration(capNanos)
		if limit <= 0 {
			limit = DefaultRetryAfterMax
		}
		if got < 0 || got > limit || got > d {
			t.Fatalf("%q (%v) capped at %v: %v", v, d, limit, got)
		}
	})
}
