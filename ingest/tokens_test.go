package ingest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The good tokens files load, with each token bound to its tenants.
func TestLoadTokens(t *testing.T) {
	toks, err := LoadTokens("testdata/tokens/teams.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if toks.Len() != 2 || toks.Legacy() {
		t.Fatalf("%d tokens, legacy %v; want 2 of the YAML format", toks.Len(), toks.Legacy())
	}
	for _, tc := range []struct {
		token  string
		tenant string   // its own
		others []string // all it may name
	}{
		{"alpha-0123456789", "team-a", []string{"team-a", "team-a-staging"}},
		{"beta-0123456789", "team-b", []string{"team-b"}},
	} {
		g := toks.lookup(tc.token)
		if g == nil || g.tenant != tc.tenant || !slices.Equal(g.tenants, tc.others) {
			t.Errorf("token %s: %+v, want tenant %s and tenants %v", tc.token, g, tc.tenant, tc.others)
		}
	}
	for _, tok := range []string{"", "gamma", "alpha-012345678", "alpha-0123456789 "} {
		if toks.lookup(tok) != nil {
			t.Errorf("token %q found", tok)
		}
	}

	legacy, err := LoadTokens("testdata/tokens/legacy.good.txt")
	if err != nil {
		t.Fatal(err)
	}
	if legacy.Len() != 2 || !legacy.Legacy() {
		t.Fatalf("legacy file: %d tokens, legacy %v; want 2, legacy", legacy.Len(), legacy.Legacy())
	}
	if g := legacy.lookup("beta-0123456789"); g == nil || g.tenant != "" {
		t.Errorf("legacy token: %+v, want one bound to no tenant", g)
	}
}

// Every bad tokens file is refused with the file, line and column of
// each of its problems, and never with the token itself.
func TestLoadTokensErrors(t *testing.T) {
	want := map[string][]string{
		"duplicate.bad.yaml": {"duplicate.bad.yaml:6:12: tokens[2].token: the same token as the entry at line 2"},
		"empty-token.bad.yaml": {
			"empty-token.bad.yaml:2:12: tokens[0].token: empty",
			"empty-token.bad.yaml:4:5: tokens[1].token: empty",
			"empty-token.bad.yaml:5:12: tokens[2].token: has a space or control character",
		},
		"tenant.bad.yaml": {
			`tenant.bad.yaml:3:13: tokens[0].tenant: invalid tenant "../../x": character "/" at 2`,
			`tenant.bad.yaml:6:27: tokens[1].tenants[1]: invalid tenant "victim|other": character "|" at 6`,
			`tenant.bad.yaml:7:5: tokens[2].tenant: missing`,
		},
		"unknown-key.bad.yaml": {`unknown-key.bad.yaml:3:5: tokens[0]: unknown key (not shown: it may be a token; valid: tenant, tenants, token)`},
		"token-as-key.bad.yaml": {
			`token-as-key.bad.yaml:2:5: tokens[0]: unknown key (not shown: it may be a token; valid: tenant, tenants, token)`,
			`token-as-key.bad.yaml:3:1: unknown key (not shown: it may be a token; valid: tokens)`,
		},
		"token-as-list.bad.yaml": {`token-as-list.bad.yaml:1:0: cannot unmarshal !!str into []ingest.Token`},
		"syntax.bad.yaml":        {`syntax.bad.yaml:2: YAML: did not find expected '-' indicator`},
		"alias.bad.yaml":         {`alias.bad.yaml: YAML: unknown anchor referenced`},
		"empty.bad.yaml":         {"empty.bad.yaml:1:9: tokens: no tokens"},
		"legacy-space.bad.txt":   {"legacy-space.bad.txt:3: has a space"},
		"legacy-empty.bad.txt":   {"legacy-empty.bad.txt: no tokens"},
	}
	files, _ := filepath.Glob("testdata/tokens/*.bad.*")
	if len(files) != len(want) {
		t.Errorf("%d bad files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseTokens(name, data)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(want[name]) {
			t.Errorf("%s: %d errors, want %d:\n%v", name, len(lines), len(want[name]), err)
			continue
		}
		for k, w := range want[name] {
			if !strings.HasPrefix(lines[k], w) {
				t.Errorf("%s: error %d is\n\t%s\nwant it to start with\n\t%s", name, k, lines[k], w)
			}
		}
		for _, secret := range []string{"alpha-0", "beta-0", "has space"} { // whole or in part
			if strings.Contains(err.Error(), secret) && !strings.Contains(name, "tenant") {
				t.Errorf("%s: the error shows a token: %v", name, err)
			}
		}
	}
	if _, err := LoadTokens("testdata/tokens/missing.yaml"); err == nil {
		t.Error("missing file: no error")
	}
}

// NewTokens checks what ParseTokens checks.
func TestNewTokens(t *testing.T) {
	for _, tc := range []struct {
		toks []Token
		msg  string
	}{
		{nil, "no tokens"},
		{[]Token{{Token: "a", Tenant: "t"}, {Token: "a", Tenant: "u"}}, "token 2: the same token is listed twice"},
		{[]Token{{Token: "", Tenant: "t"}}, "token 1: token: empty"},
		{[]Token{{Token: "a"}}, "token 1: tenant: missing"},
		{[]Token{{Token: "a", Tenant: "x/y"}}, `token 1: tenant: invalid tenant "x/y"`},
		{[]Token{{Token: "a", Tenant: "t", Tenants: []string{".."}}}, `token 1: tenants: invalid tenant ".."`},
	} {
		if _, err := NewTokens(tc.toks...); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("NewTokens(%+v) = %v, want an error with %q", tc.toks, err, tc.msg)
		}
	}
}
