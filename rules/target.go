package rules

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// target is the left side of set, an item of delete or either side of
// rename: an attribute, a resource attribute or a settable field.
type target struct {
	kind  targetKind
	key   string // the attribute key, for attribute and resource targets
	field *field // for field targets
	text  string // as written in the rule
}

type targetKind uint8

const (
	targetAttribute targetKind = iota
	targetResource
	targetField
)

// parseTarget reads `attributes["key"]`, `resource["key"]` (single or
// double quotes, Go escapes in double quotes) or the name of a settable
// field of sig.
func parseTarget(sig otlpwire.Signal, s string) (target, error) {
	t := target{text: s}
	s = strings.TrimSpace(s)
	for i := range fields[sig] {
		if f := &fields[sig][i]; f.name == s {
			t.kind, t.field = targetField, f
			return t, nil
		}
	}
	name, rest, ok := strings.Cut(s, "[")
	switch name = strings.TrimSpace(name); {
	case !ok && isIdent(s):
		return t, fmt.Errorf("%s is not a settable field of %s (settable: %s; or attributes[\"key\"], resource[\"key\"])",
			s, sig, strings.Join(fieldNames(sig), ", "))
	case !ok:
		return t, fmt.Errorf("bad target %q: want attributes[\"key\"], resource[\"key\"] or one of: %s",
			s, strings.Join(fieldNames(sig), ", "))
	case name == "attributes":
		t.kind = targetAttribute
	case name == "resource":
		t.kind = targetResource
	default:
		hint := ""
		if m := suggest(name, []string{"attributes", "resource"}); m != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", m)
		}
		return t, fmt.Errorf("bad target %q: only attributes[...] and resource[...] can be indexed%s", s, hint)
	}
	rest = strings.TrimSpace(rest)
	inner, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return t, fmt.Errorf("bad target %q: missing closing ]", s)
	}
	key, err := unquote(strings.TrimSpace(inner))
	if err != nil {
		return t, fmt.Errorf("bad target %q: the key must be a quoted string, as in %s[\"http.route\"]", s, name)
	}
	if key == "" {
		return t, fmt.Errorf("bad target %q: empty key", s)
	}
	t.key = key
	return t, nil
}

func unquote(s string) (string, error) {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		inner := s[1 : len(s)-1]
		if strings.ContainsRune(inner, '\'') {
			return "", strconv.ErrSyntax
		}
		return inner, nil
	}
	if len(s) >= 2 && s[0] == '"' {
		return strconv.Unquote(s)
	}
	return "", strconv.ErrSyntax
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

// attrs returns the map t addresses in env; nil if it has none yet.
func (t *target) attrs(env Env) map[string]any {
	c := env.common()
	if t.kind == targetResource {
		return c.Resource
	}
	return c.Attributes
}

// attrsForWrite returns the map t addresses in env, creating it if nil.
func (t *target) attrsForWrite(env Env) map[string]any {
	c := env.common()
	m := &c.Attributes
	if t.kind == targetResource {
		m = &c.Resource
	}
	if *m == nil {
		*m = make(map[string]any)
	}
	return *m
}

// suggest returns the candidate closest to name, if it is close enough to
// be a likely typo.
func suggest(name string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(name, c)
		if strings.HasPrefix(c, name) || strings.HasPrefix(name, c) || len(name) >= 3 && isSubsequence(name, c) {
			d = min(d, 1) // "attrs" for "attributes"
		}
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, len(name)/4) {
		return ""
	}
	return best
}

// isSubsequence reports whether the letters of a appear in b in order.
func isSubsequence(a, b string) bool {
	for i := 0; i < len(b) && a != ""; i++ {
		if a[0] == b[i] {
			a = a[1:]
		}
	}
	return a == ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent letters.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
