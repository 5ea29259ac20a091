package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/stream/cardinality"
)

// cardinalityPath is where a worker's admin server serves its report.
const cardinalityPath = "/api/v1/cardinality"

// newCardinalityCmd is `sluice cardinality`: the report of a running
// worker's cardinality tracker. cfgFile is the root's --config.
func newCardinalityCmd(cfgFile *string) *cobra.Command {
	var (
		adminAddr, tenant string
		top               int
		asJSON            bool
	)
	cmd := &cobra.Command{
		Use:   "cardinality",
		Short: "Show the active series per metric and label of a running worker, before and after the rules",
		Long: `cardinality asks a running sluice process (sluice run or sluice worker) for the
active series its worker tracks, per tenant: for each metric, the series before
the rules and after them, and the labels with the most distinct values. A
series is active for one to two worker.cardinality.window after it was last
seen. It reads GET /api/v1/cardinality on the admin server at --admin, or at
admin.listen of the config file.

A process sees only the partitions its worker consumes; with several workers,
ask each.`,
		Example: `  sluice cardinality -c sluice.yaml
  sluice cardinality --admin 10.0.0.7:9464 --tenant acme --top 5
  sluice cardinality --json | jq '.tenants[].metrics[0]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if top < 0 {
				return fmt.Errorf("--top must be 0 (all) or more, not %d", top)
			}
			base, err := adminBase(adminAddr, *cfgFile)
			if err != nil {
				return err
			}
			q := url.Values{"top": {strconv.Itoa(top)}}
			if tenant != "" {
				q.Set("tenant", tenant)
			}
			body, err := getReport(base + cardinalityPath + "?" + q.Encode())
			if err != nil {
				return err
			}
			var rep cardinality.Report
			if err := json.Unmarshal(body, &rep); err != nil {
				return fmt.Errorf("%s answered what is not a cardinality report (is it sluice's admin server?): %v", base, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				_, err := out.Write(body)
				return err
			}
			if tenant != "" && len(rep.Tenants) == 0 {
				_, err := fmt.Fprintf(out, "no active series for tenant %q\n", tenant)
				return err
			}
			return rep.WriteText(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&adminAddr, "admin", "", "admin address of the running sluice, host:port or URL (default: admin.listen of --config)")
	f.StringVar(&tenant, "tenant", "", "only this tenant (default: all)")
	f.IntVar(&top, "top", cardinality.DefaultTop, "metrics per tenant and labels per metric to show; 0 shows all")
	f.BoolVar(&asJSON, "json", false, "print the JSON report as the server sends it")
	return cmd
}

// adminBase is the URL of the admin server: addr when given, else the
// admin.listen of the config file, with a listen-on-all host made local.
func adminBase(addr, cfgFile string) (string, error) {
	if addr != "" {
		base, err := dialURL(addr)
		if err != nil {
			return "", fmt.Errorf("--admin: %w", err)
		}
		return base, nil
	}
	cfg, err := app.Load(cfgFile)
	if err != nil {
		return "", fmt.Errorf("finding the admin server (or give --admin): %w", err)
	}
	if cfg.Admin.Listen == "" {
		return "", fmt.Errorf("%s: admin.listen is empty, the admin server is off; give --admin", cfgFile)
	}
	base, err := dialURL(cfg.Admin.Listen)
	if err != nil {
		return "", fmt.Errorf("%s: admin.listen: %w; give --admin", cfgFile, err)
	}
	return base, nil
}

// dialURL turns a listen address (host:port, :port, 0.0.0.0:port) or a
// URL into the base URL to send requests to.
func dialURL(addr string) (string, error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("invalid URL %q", addr)
		}
		return strings.TrimRight(addr, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("want host:port or a URL, not %q", addr)
	}
	if port == "0" || port == "" {
		return "", fmt.Errorf("%q does not say which port the server picked", addr)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// getReport GETs u and returns the body of a 200 answer; any other answer
// is an error that says what to do.
func getReport(u string) ([]byte, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach sluice's admin server at %s: %w (is sluice running? the address is --admin, or admin.listen of --config)", hostOf(u), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", hostOf(u), err)
	}
	msg := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusNotFound && msg == "404 page not found":
		return nil, fmt.Errorf("no worker in the process at %s: cardinality is tracked by workers (sluice run or sluice worker)", hostOf(u))
	default:
		return nil, fmt.Errorf("%s answered %s: %s", hostOf(u), resp.Status, msg)
	}
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}
