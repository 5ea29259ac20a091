package sluice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sluice-dev/sluice"

// A layer rule says what the packages under one folder of the module may
// depend on. Paths are relative to the module and match a folder and
// everything below it.
type layerRule struct {
	from string
	// forbid lists the folders that the packages under from must not depend
	// on, directly or through another package.
	forbid []string
	// only, when set, lists the only folders of the module the packages
	// under from may depend on (besides their own folder).
	only []string
	// tests extends the rule to the packages' test files (direct imports).
	tests bool
	why   string
}

// layers are the dependency rules of README.md, "Architecture".
var layers = []layerRule{
	{from: "ingest", forbid: []string{"rules", "schemas", "sinks", "app"}, tests: true,
		why: "the ingesters are stateless and never decode: they scan the wire format and write to the bus"},
	{from: "rules", forbid: []string{"stream", "ingest", "sinks", "app"}, tests: true,
		why: "rules are pure: a batch in, a batch out"},
	{from: "schemas", only: []string{"internal/otlpwire", "internal/arrowpool"},
		why: "the Arrow layout sits on the OTLP ground floor only"},
	{from: "schemas", forbid: []string{"stream", "ingest", "rules", "sinks", "app"}, tests: true,
		why: "the Arrow layout sits on the OTLP ground floor only"},
	{from: "sinks", forbid: []string{"ingest", "rules", "app"}, tests: true,
		why: "a sink delivers processed records; it does not depend on the ingester or the rule engine"},
	{from: "stream", forbid: []string{"ingest", "sinks", "app"}, tests: true,
		why: "the bus and the workers sit below the ingesters and the sinks"},
	{from: "internal/otlpwire", only: []string{},
		why: "the ground floor imports nothing of ours"},
	{from: "internal", forbid: []string{"ingest", "stream", "rules", "schemas", "sinks", "app", "cmd", "bench"}, tests: true,
		why: "internal holds only what the parts above use"},
	{from: "", forbid: []string{"cmd"}, tests: true,
		why: "cmd is the binary; nothing imports it"},
	{from: "", forbid: []string{"app"}, tests: true,
		why: "app wires the roles for the binary and the benchmarks only"},
	{from: "", forbid: []string{"bench"}, tests: true,
		why: "the benchmarks are outside the product"},
}

// exempt says which folders a rule of from "" does not apply to: the
// folder itself and the ones allowed to use it.
var exempt = map[string][]string{
	"cmd":   {"cmd"},
	"app":   {"app", "cmd", "bench"},
	"bench": {"bench"},
}

// goPackage is what `go list -json` says of one package.
type goPackage struct {
	ImportPath   string
	Deps         []string // every package it depends on, transitively, without tests
	TestImports  []string
	XTestImports []string
}

// under reports whether the module-relative path p is folder dir or below it;
// dir "" is the whole module.
func under(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

// ours returns p relative to the module, or false for other modules.
func ours(p string) (string, bool) {
	if p == module {
		return "", true
	}
	return strings.CutPrefix(p, module+"/")
}

// violations checks every package against every rule and returns one line
// per broken rule and dependency.
func violations(pkgs []goPackage, rules []layerRule) []string {
	var out []string
	for _, p := range pkgs {
		from, ok := ours(p.ImportPath)
		if !ok {
			continue
		}
		for _, r := range rules {
			if !under(from, r.from) || (r.from == "" && exemptFrom(r, from)) {
				continue
			}
			check := func(deps []string, kind string) {
				for _, d := range deps {
					to, ok := ours(d)
					if !ok || under(to, r.from) && r.from != "" {
						continue
					}
					if broken(r, to) {
						out = append(out, fmt.Sprintf("%s %s %s: %s", from, kind, to, r.why))
					}
				}
			}
			check(p.Deps, "depends on")
			if r.tests && r.only == nil {
				check(append(slices.Clone(p.TestImports), p.XTestImports...), "tests import")
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func exemptFrom(r layerRule, from string) bool {
	for _, f := range r.forbid {
		for _, e := range exempt[f] {
			if under(from, e) {
				return true
			}
		}
	}
	return false
}

func broken(r layerRule, to string) bool {
	if r.only != nil {
		return !slices.ContainsFunc(r.only, func(dir string) bool { return under(to, dir) })
	}
	return slices.ContainsFunc(r.forbid, func(dir string) bool { return under(to, dir) })
}

// TestLayers fails when a package imports across the layers of the
// architecture. The rules are in layers; README.md states them.
func TestLayers(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages of the module; expected the whole tree", len(pkgs))
	}
	for _, v := range violations(pkgs, layers) {
		t.Error(v)
	}
}

// TestLayerRulesCatch pins that the rules catch the import edges they were
// written against (the layout before the OTLP ground floor) and let the
// allowed ones through, so TestLayers cannot pass by checking nothing.
func TestLayerRulesCatch(t *testing.T) {
	m := func(p string) string {
		if p == "" {
			return module
		}
		return module + "/" + p
	}
	pkg := func(p string, deps ...string) goPackage {
		g := goPackage{ImportPath: m(p)}
		for _, d := range deps {
			g.Deps = append(g.Deps, m(d))
		}
		return g
	}
	bad := []goPackage{
		pkg("schemas", "stream"),                  // for the Signal enum
		pkg("rules/columnar", "stream"),           // to convert stream.Signal to rules.Signal
		pkg("rules/ruletest", "stream"),           // stream.ParseSignal
		pkg("sinks/otlp", "ingest/otlpwire"),      // the splitter
		pkg("sinks/kafkasink", "ingest/otlpwire"), // the splitter
		pkg("internal/otlpjson", "stream"),        // the Signal enum
		pkg("internal/otlpwire", "stream"),
		pkg("schemas", "internal/otlpjson"), // beyond the ground floor and the pool
		pkg("ingest", "schemas"),
		pkg("stream/worker", "sinks/file"),
		pkg("sinks/loki", "rules"),
		pkg("internal/otlptest", "app"),
	}
	for _, p := range bad {
		if v := violations([]goPackage{p}, layers); len(v) == 0 {
			t.Errorf("%s -> %v: no rule broken", p.ImportPath, p.Deps)
		}
	}
	// A test of rules that imports the bus is caught too.
	rt := goPackage{ImportPath: m("rules/columnar"), TestImports: []string{m("stream/worker")}}
	if v := violations([]goPackage{rt}, layers); len(v) == 0 {
		t.Errorf("rules/columnar's test importing stream/worker: no rule broken")
	}
	good := []goPackage{
		pkg("schemas", "internal/otlpwire", "internal/arrowpool"),
		pkg("rules/columnar", "rules", "schemas", "internal/otlpwire", "internal/arrowpool"),
		pkg("sinks/otlp", "sinks", "schemas", "stream", "internal/otlpwire", "internal/config"),
		pkg("ingest", "stream", "internal/otlpwire", "internal/otlpjson"),
		pkg("stream/worker", "stream", "stream/stage", "schemas"),
		pkg("app", "ingest", "rules/columnar", "sinks/loki", "stream/kafka"),
		pkg("bench/workerload", "app", "bench/benchutil"),
		pkg("cmd/sluice", "app", "rules/ruletest"),
	}
	for _, p := range good {
		if v := violations([]goPackage{p}, layers); len(v) != 0 {
			t.Errorf("%s -> %v: allowed, but %v", p.ImportPath, p.Deps, v)
		}
	}
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goBin = p
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Deps,TestImports,XTestImports,Error", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			goPackage
			Error *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p.goPackage)
	}
	return pkgs
}
