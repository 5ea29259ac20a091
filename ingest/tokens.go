package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/tenant"
)

// Token is one bearer token and the tenants its requests may write as.
type Token struct {
	// Token is the secret a client sends as "Authorization: Bearer <token>".
	Token string `yaml:"token"`
	// Tenant is the tenant of the token's requests without X-Scope-OrgID.
	Tenant string `yaml:"tenant"`
	// Tenants are the tenants the token may name in X-Scope-OrgID, as
	// Grafana's access policies allow; Tenant is always one of them.
	Tenants []string `yaml:"tenants"`
}

// Tokens is an immutable set of bearer tokens bound to tenants. Only the
// tokens' SHA-256 digests are kept, and a lookup compares the digest of
// the presented token with every one of them in constant time: how long it
// takes says nothing about which token, or how much of one, matched.
type Tokens struct {
	grants []grant
	// legacy: read from a one-token-per-line file. Its tokens carry no
	// tenant: they write as Config.DefaultTenant only (or as the header
	// says with Config.TrustTenantHeader).
	legacy bool
}

type grant struct {
	digest  [sha256.Size]byte
	tenant  string   // "" for a legacy token: Config.DefaultTenant
	tenants []string // allowed in X-Scope-OrgID, tenant included; nil for a legacy token
}

// NewTokens returns the set of toks. Every token must be non-empty, free
// of spaces and unique, and every tenant valid (internal/tenant).
func NewTokens(toks ...Token) (*Tokens, error) {
	var errs []error
	t := &Tokens{}
	for k, tok := range toks {
		g, err := newGrant(tok)
		if err != nil {
			errs = append(errs, fmt.Errorf("token %d: %w", k+1, err))
			continue
		}
		if t.find(g.digest) >= 0 {
			errs = append(errs, fmt.Errorf("token %d: the same token is listed twice", k+1))
			continue
		}
		t.grants = append(t.grants, g)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(t.grants) == 0 {
		return nil, errors.New("no tokens (an empty set would refuse every request)")
	}
	return t, nil
}

func newGrant(tok Token) (grant, error) {
	if err := checkToken(tok.Token); err != nil {
		return grant{}, err
	}
	if tok.Tenant == "" {
		return grant{}, errors.New("tenant: missing (the tenant of the token's requests without X-Scope-OrgID)")
	}
	g := grant{digest: sha256.Sum256([]byte(tok.Token)), tenant: tok.Tenant, tenants: []string{tok.Tenant}}
	var errs []error
	if err := tenant.Validate(tok.Tenant); err != nil {
		errs = append(errs, fmt.Errorf("tenant: %w", err))
	}
	for _, name := range tok.Tenants {
		if err := tenant.Validate(name); err != nil {
			errs = append(errs, fmt.Errorf("tenants: %w", err))
		} else if !slices.Contains(g.tenants, name) {
			g.tenants = append(g.tenants, name)
		}
	}
	return g, errors.Join(errs...)
}

func checkToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("token: empty")
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("token: has a space or control character (a bearer token cannot carry it)")
	}
	return nil
}

// find is the index of the grant whose digest is d, or -1. It compares d
// with every grant, in constant time each, whatever it finds.
func (t *Tokens) find(d [sha256.Size]byte) int {
	found := -1
	for k := range t.grants {
		if subtle.ConstantTimeCompare(t.grants[k].digest[:], d[:]) == 1 {
			found = k
		}
	}
	return found
}

// lookup is the grant of a bearer token, nil if it is none of the set's.
func (t *Tokens) lookup(tok string) *grant {
	if tok == "" {
		return nil
	}
	if k := t.find(sha256.Sum256([]byte(tok))); k >= 0 {
		return &t.grants[k]
	}
	return nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.grants) }

// Legacy reports whether the set was read from a one-token-per-line file,
// whose tokens are bound to no tenant.
func (t *Tokens) Legacy() bool { return t.legacy }

// LoadTokens reads a tokens file (see ParseTokens).
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTokens(path, data)
}

// tokensFile is the YAML form of a tokens file.
type tokensFile struct {
	Tokens []Token `yaml:"tokens"`
}

// ParseTokens reads a tokens file; file names it in errors, which carry the
// line and column of each problem and are all reported together.
//
// A file whose top level is a YAML mapping, or whose first line (past
// blank lines and comments) starts with "tokens:", is the current format:
//
//	tokens:
//	  - token: "..."          # the bearer token
//	    tenant: team-a        # its requests' tenant without X-Scope-OrgID
//	    tenants: [team-a-dev] # optional: other tenants it may name in X-Scope-OrgID
//
// Any other file is the format of sluice before tenants were bound to
// tokens: one token per line, surrounding spaces trimmed, blank lines and
// lines starting with '#' skipped. Its tokens carry no tenant (Legacy).
// A file without tokens is an error, as it would lock every client out.
func ParseTokens(file string, data []byte) (*Tokens, error) {
	var root yaml.Node
	err := yaml.Unmarshal(data, &root)
	if err != nil && startsWithTokensKey(data) {
		// Not a list of tokens with spaces in them: YAML that does not parse.
		return nil, yamlSyntaxError(file, err)
	}
	if err != nil || root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return parseLegacyTokens(file, data)
	}
	var f tokensFile
	var errs []error
	for _, e := range config.DecodeStrict(&root, "", &f) {
		e.File = file
		redact(e)
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	at := func(n *yaml.Node, path, format string, args ...any) {
		errs = append(errs, &config.Error{File: file, Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	list := mapValue(root.Content[0], "tokens")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		n := root.Content[0]
		if list != nil {
			n = list
		}
		at(n, "tokens", "no tokens (an empty set would refuse every request)")
		return nil, errors.Join(errs...)
	}
	t := &Tokens{}
	seen := map[[sha256.Size]byte]int{}     // digest → line
	if len(f.Tokens) != len(list.Content) { // yaml drops null items
		f.Tokens = make([]Token, len(list.Content))
		for k, item := range list.Content {
			item.Decode(&f.Tokens[k]) // null: a zero Token, refused below
		}
	}
	for k, tok := range f.Tokens {
		item := list.Content[k]
		path := fmt.Sprintf("tokens[%d]", k)
		field := func(key string) *yaml.Node {
			if n := mapValue(item, key); n != nil {
				return n
			}
			return item
		}
		if err := checkToken(tok.Token); err != nil {
			at(field("token"), path+".token", "%s", strings.TrimPrefix(err.Error(), "token: "))
			continue
		}
		d := sha256.Sum256([]byte(tok.Token))
		if line, dup := seen[d]; dup {
			at(field("token"), path+".token", "the same token as the entry at line %d", line)
			continue
		}
		seen[d] = field("token").Line
		g := grant{digest: d, tenant: tok.Tenant, tenants: []string{tok.Tenant}}
		if tok.Tenant == "" {
			at(item, path+".tenant", "missing: the tenant of the token's requests without X-Scope-OrgID")
		} else if err := tenant.Validate(tok.Tenant); err != nil {
			at(field("tenant"), path+".tenant", "%v", err)
		}
		for j, name := range tok.Tenants {
			n := field("tenants")
			if n.Kind == yaml.SequenceNode && j < len(n.Content) {
				n = n.Content[j]
			}
			if err := tenant.Validate(name); err != nil {
				at(n, fmt.Sprintf("%s.tenants[%d]", path, j), "%v", err)
			} else if !slices.Contains(g.tenants, name) {
				g.tenants = append(g.tenants, name)
			}
		}
		t.grants = append(t.grants, g)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(t.grants) == 0 {
		at(list, "tokens", "no tokens (an empty set would refuse every request)")
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// startsWithTokensKey reports whether the first line of data that is
// neither blank nor a comment starts with "tokens:".
func startsWithTokensKey(data []byte) bool {
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return bytes.HasPrefix(line, []byte("tokens:"))
		}
	}
	return false
}

// yamlSyntaxError is err, yaml's "yaml: line N: msg", as "file:N: YAML:
// msg" (N is where yaml saw the construct begin, which may be above the
// mistake), without the anchor name of an unknown alias (it may be a
// token).
func yamlSyntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = yamlAnchorName.ReplaceAllString(msg, "anchor")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		return fmt.Errorf("%s:%d: YAML: %s", file, line, strings.TrimSpace(msg[strings.IndexByte(msg, ':')+1:]))
	}
	return fmt.Errorf("%s: YAML: %s", file, msg)
}

var yamlAnchorName = regexp.MustCompile(`anchor '[^']*'`)

// redact takes out of e what it quotes of the file, which may be a token:
// the name of an unknown key (a token written as a key) and the start of
// a value yaml could not decode. The line and column still point at it.
func redact(e *config.Error) {
	if k := e.UnknownKey(); k != "" {
		e.Path = strings.TrimSuffix(strings.TrimSuffix(e.Path, k), ".")
		valid := ""
		if i := strings.Index(e.Msg, "(valid: "); i >= 0 {
			valid = "; " + strings.TrimSuffix(e.Msg[i+1:], ")")
		}
		e.Msg = "unknown key (not shown: it may be a token" + valid + ")"
	}
	e.Msg = yamlQuotedValue.ReplaceAllString(e.Msg, "")
}

// yamlQuotedValue is how yaml quotes a value in its type errors:
// "cannot unmarshal !!str `abcdefg...` into string".
var yamlQuotedValue = regexp.MustCompile(" `[^`]*`")

// mapValue is the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		if n.Content[k].Value == key {
			return n.Content[k+1]
		}
	}
	return nil
}

func parseLegacyTokens(file string, data []byte) (*Tokens, error) {
	t := &Tokens{legacy: true}
	seen := map[[sha256.Size]byte]int{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		if err := checkToken(s); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s", file, line, strings.TrimPrefix(err.Error(), "token: ")))
			continue
		}
		d := sha256.Sum256([]byte(s))
		if _, dup := seen[d]; dup {
			continue // as before the tenants: a repeated line is no error
		}
		seen[d] = line
		t.grants = append(t.grants, grant{digest: d})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(t.grants) == 0 {
		return nil, fmt.Errorf("%s: no tokens (an empty set would refuse every request)", file)
	}
	return t, nil
}
