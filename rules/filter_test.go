package rules

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// A filter keeps the items its condition matches and drops the others and
// those it fails on; it uses the names and functions of rules.
func TestFilterKeepsMatchingItems(t *testing.T) {
	set, err := Filter(otlpwire.Logs, "--filter", `severity_number >= 17 || parse_int(attributes["code"]) > 499`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env         *LogEnv
		keep, fails bool
	}{
		{&LogEnv{SeverityNumber: 17}, true, false},
		{&LogEnv{SeverityNumber: 9, Common: Common{Attributes: map[string]any{"code": "503"}}}, true, false},
		{&LogEnv{SeverityNumber: 9, Common: Common{Attributes: map[string]any{"code": "200"}}}, false, false},
		{&LogEnv{SeverityNumber: 9, Common: Common{Attributes: map[string]any{"code": "oops"}}}, false, true},
		{&LogEnv{SeverityNumber: 9}, false, true}, // parse_int(nil)
	} {
		res, err := set.Apply(c.env)
		if (err != nil) != c.fails {
			t.Errorf("%+v: error %v, want one: %v", c.env, err, c.fails)
		}
		if res.Drop == c.keep {
			t.Errorf("%+v: dropped %v, want kept %v", c.env, res.Drop, c.keep)
		}
	}
	if len(set.Rules(otlpwire.Logs)) != 1 || len(set.Rules(otlpwire.Metrics)) != 0 {
		t.Errorf("a filter is one rule of its signal: %v", set.All())
	}
}

// Errors point at the column in the condition itself.
func TestFilterErrors(t *testing.T) {
	for _, c := range []struct {
		sig  otlpwire.Signal
		cond string
		want string
	}{
		{otlpwire.Metrics, `atributes["x"] == "a"`, `--filter:1:1: unknown name atributes (did you mean attributes?)`},
		{otlpwire.Logs, `severity_number >= 17 && nme == "x"`, `--filter:1:26: unknown name nme`},
		{otlpwire.Metrics, `body == "x"`, `--filter:1:1: unknown name body`},
		{otlpwire.Traces, `duration_ms > "x"`, `--filter:1:13: invalid operation`},
		{otlpwire.Traces, `name`, `--filter:1:1: expected bool, but got string`},
		{otlpwire.Logs, `match_regex(body, "(")`, `--filter:1:`},
		{otlpwire.Logs, ` `, `--filter: want an expression`},
	} {
		_, err := Filter(c.sig, "--filter", c.cond)
		if err == nil || len(err.Error()) < len(c.want) || err.Error()[:len(c.want)] != c.want {
			t.Errorf("Filter(%s, %q): %v, want %q...", c.sig, c.cond, err, c.want)
		}
	}
}
