package app

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromium finds Debian's chromium (scripts/backends/install.sh installs
// it, as root, for `make test`) or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no chromium on PATH: run `make test` as root (scripts/backends/install.sh installs Debian's chromium) or install it")
	return ""
}

// dumpDOM loads url in headless chromium, lets the page's script run for
// 5 s of virtual time (its refreshes included) and returns the DOM as the
// script left it.
func dumpDOM(t *testing.T, browser, url string) *html.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, stderr.String())
	}
	doc, err := html.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if v, ok := attr(n, "id"); ok && v == id && found == nil {
			found = n
		}
	})
	return found
}

// rows are the texts of the cells of each row of a table body.
func rows(tbody *html.Node) [][]string {
	var out [][]string
	for tr := tbody.FirstChild; tr != nil; tr = tr.NextSibling {
		if tr.Type != html.ElementNode || tr.Data != "tr" {
			continue
		}
		var cells []string
		for td := tr.FirstChild; td != nil; td = td.NextSibling {
			if td.Type == html.ElementNode && td.Data == "td" {
				cells = append(cells, text(td))
			}
		}
		out = append(out, cells)
	}
	return out
}

// number reads a number as the page writes it ("1,234").
func number(s string) (float64, error) {
	return strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 64)
}

// The page in a real browser: its script fetches /api/v1/status and
// writes the numbers into the page. To prove that the script, not the
// server's rendering, put them there, the browser loads the page as the
// server rendered it before any traffic (every total 0, no rules counted,
// no dead letters), through a proxy that passes the script's fetches to
// the running process. After the traffic has stopped, every number the
// script wrote equals /metrics scraped around the browser's run; the rule's
// row and the dead letters are there, the hostile tenant as text: no
// element of it, no script of it run.
func TestStatusPageInBrowser(t *testing.T) {
	browser := chromium(t)
	var stale []byte
	p := statusPipeline(t, func(p *Process) { stale = get(t, "http://"+p.AdminAddr()+"/") })
	if !bytes.Contains(stale, []byte(`data-k="worker|in|total" title="sum(sluice_worker_items_in_total)">0<`)) {
		t.Fatalf("the page before the traffic does not show 0 items in the worker:\n%s", stale)
	}
	admin, _ := url.Parse("http://" + p.AdminAddr())
	proxy := httputil.NewSingleHostReverseProxy(admin)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(stale)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()

	var doc *html.Node
	want := stableMetrics(t, p, func() { doc = dumpDOM(t, browser, srv.URL+"/") })

	var body, title *html.Node
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "body" {
			body = n
		}
		if n.Type == html.ElementNode && n.Data == "title" {
			title = n
		}
		if n.Type == html.ElementNode && (n.Data == "img" || (n.Data == "script" && strings.Contains(text(n), "pwned"))) {
			t.Errorf("markup of the hostile tenant became an element: <%s %v>", n.Data, n.Attr)
		}
	})
	if v, _ := attr(body, "data-refreshes"); v == "" || v == "0" {
		t.Fatalf("the page's script did not refresh (data-refreshes %q)", v)
	}
	if got := text(title); got != "sluice status" {
		t.Errorf("title %q: a script of the hostile tenant ran", got)
	}
	seen := map[string]bool{}
	walk(doc, func(n *html.Node) {
		k, ok := attr(n, "data-k")
		if !ok {
			return
		}
		w, ok := want[k]
		if !ok {
			if strings.HasSuffix(k, "|total") || strings.HasSuffix(k, "|lag") {
				t.Errorf("%s: a number of the page the test does not know", k)
			}
			return
		}
		seen[k] = true
		got, err := number(text(n))
		if err != nil || got != w {
			t.Errorf("%s: the page shows %q, /metrics %v", k, text(n), w)
		}
	})
	for k := range want {
		if !seen[k] && !strings.HasPrefix(k, "rule|") && !strings.HasPrefix(k, "dead letters") {
			t.Errorf("%s: not on the page", k)
		}
	}

	// The rule's row: file, signal, rule, then each counter's total and rate.
	var rule []string
	for _, r := range rows(byID(doc, "rules")) {
		if len(r) > 2 && r[2] == "drop-debug" {
			rule = r
		}
	}
	if len(rule) != 11 {
		t.Fatalf("no row of the rule drop-debug: %v", rows(byID(doc, "rules")))
	}
	for i, c := range []string{"matched", "dropped", "changed", "errors"} {
		got, err := number(rule[3+2*i])
		if w := want["rule|drop-debug|"+c+"|total"]; err != nil || got != w {
			t.Errorf("rule drop-debug %s: the page shows %q, /metrics %v", c, rule[3+2*i], w)
		}
	}
	if rule[3] != "10" {
		t.Errorf("rule drop-debug matched %q, want the 10 debug logs", rule[3])
	}

	// The dead letters: time, stage, tenant, origin, bytes, reason.
	dead := rows(byID(doc, "deadletters"))
	if len(dead) != 2 {
		t.Fatalf("%d rows of dead letters, want 2: %v", len(dead), dead)
	}
	var hostile bool
	for _, d := range dead {
		if len(d) != 6 || d[1] != "worker" || d[5] == "" {
			t.Errorf("dead letter row %q", d)
			continue
		}
		if d[2] == hostileTenant {
			hostile = true
			if !strings.Contains(d[5], "invalid tenant") || !strings.Contains(d[5], `<img src=x`) {
				t.Errorf("the hostile tenant's reason: %q", d[5])
			}
		}
	}
	if !hostile {
		t.Errorf("no dead letter shows the hostile tenant as text: %q", dead)
	}
	if seen, kept := text(byID(doc, "dlseen")), text(byID(doc, "dlkept")); seen != "2" || kept != "2" {
		t.Errorf("dead letters seen %q, kept %q; want 2 and 2", seen, kept)
	}
}
