package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// functions are the functions sluice adds to expr's built-ins. They belong
// to one Set: the regular expressions they use are compiled while the set
// loads and kept here, read-only afterwards, as are the bounds of each
// bucket call. The state of each top_k call (topkSite) is the one part
// that changes as batches go through; it lives here too, so a reload
// starts afresh.
type functions struct {
	regexps map[string]*regexp.Regexp
	// Per call site of bucket and top_k, by the site number sitePatcher
	// gives each call; filled by the walker's checks.
	buckets []*bucketer
	topks   []*topkSite
}

// regexFuncs are the functions whose argument at the given index is a
// regular expression; it must be a string literal so it is compiled (and
// checked) when the rules load.
var regexFuncs = map[string]int{"replace_regex": 1, "match_regex": 1}

// funcNames lists the functions sluice adds, for "did you mean" hints.
var funcNames = []string{"sha256", "replace_regex", "match_regex", "truncate", "parse_int", "parse_float", "concat", "bucket", "top_k"}

// sitePatcher gives each call of bucket and top_k a call site: it adds
// the site's number as a hidden argument, the index of its bucketer or
// topkSite in functions (prepared by the walker's checks once the
// expression compiled). top_k also gets $env, the item, through which it
// finds the Evaluator running it (Common.ev) and so its batch and tenant.
// For the type checker both are variadic (expr's checker misses a wrong
// count of arguments after a patch); the walker checks the count.
type sitePatcher struct{ f *functions }

func (p sitePatcher) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	switch id.Value {
	case "bucket":
		n.Arguments = append(n.Arguments, &ast.IntegerNode{Value: len(p.f.buckets)})
		p.f.buckets = append(p.f.buckets, nil)
	case "top_k":
		n.Arguments = append(n.Arguments, &ast.IntegerNode{Value: len(p.f.topks)}, &ast.IdentifierNode{Value: "$env"})
		p.f.topks = append(p.f.topks, nil)
	}
}

func (f *functions) options() []expr.Option {
	return []expr.Option{
		expr.Patch(sitePatcher{f}),
		f.bucketFunc(),
		f.topkFunc(),

		expr.Function("sha256", func(args ...any) (any, error) {
			s, err := stringArg("sha256", args[0])
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256([]byte(s))
			var buf [2 * sha256.Size]byte
			hex.Encode(buf[:], sum[:])
			return string(buf[:]), nil
		}, new(func(string) string)),

		expr.Function("replace_regex", func(args ...any) (any, error) {
			s, err := stringArg("replace_regex", args[0])
			if err != nil {
				return nil, err
			}
			re, err := f.regexp(args[1])
			if err != nil {
				return nil, err
			}
			repl, err := stringArg("replace_regex", args[2])
			if err != nil {
				return nil, err
			}
			return re.ReplaceAllString(s, repl), nil
		}, new(func(string, string, string) string)),

		expr.Function("match_regex", func(args ...any) (any, error) {
			s, err := stringArg("match_regex", args[0])
			if err != nil {
				return nil, err
			}
			re, err := f.regexp(args[1])
			if err != nil {
				return nil, err
			}
			return re.MatchString(s), nil
		}, new(func(string, string) bool)),

		expr.Function("truncate", func(args ...any) (any, error) {
			s, err := stringArg("truncate", args[0])
			if err != nil {
				return nil, err
			}
			n, ok := args[1].(int)
			if !ok || n < 0 {
				return nil, fmt.Errorf("truncate: length must be an int >= 0, got %v", args[1])
			}
			return truncateRunes(s, n), nil
		}, new(func(string, int) string)),

		expr.Function("parse_int", func(args ...any) (any, error) {
			s, err := stringArg("parse_int", args[0])
			if err != nil {
				return nil, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse_int: %q is not an integer", s)
			}
			return int(n), nil
		}, new(func(string) int)),

		expr.Function("parse_float", func(args ...any) (any, error) {
			s, err := stringArg("parse_float", args[0])
			if err != nil {
				return nil, err
			}
			x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("parse_float: %q is not a number", s)
			}
			return x, nil
		}, new(func(string) float64)),

		// concat replaces expr's array concat built-in: telemetry rules
		// join strings far more often than arrays.
		expr.Function("concat", func(args ...any) (any, error) {
			var b []byte
			for _, a := range args {
				b = appendValue(b, a)
			}
			return string(b), nil
		}, new(func(...any) string)),
	}
}

func (f *functions) regexp(pattern any) (*regexp.Regexp, error) {
	s, _ := pattern.(string)
	if re, ok := f.regexps[s]; ok {
		return re, nil
	}
	// Not reached: patterns are string literals, compiled at load.
	return nil, fmt.Errorf("regular expression %q was not compiled at load", s)
}

// addRegexp compiles a pattern found in an expression at load time.
func (f *functions) addRegexp(pattern string) error {
	if _, ok := f.regexps[pattern]; ok {
		return nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return err
	}
	f.regexps[pattern] = re
	return nil
}

func stringArg(fn string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		if v == nil {
			return "", fmt.Errorf("%s: want a string, got nil (missing attribute?)", fn)
		}
		return "", fmt.Errorf("%s: want a string, got %T", fn, v)
	}
	return s, nil
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// appendValue formats v as concat does: strings as they are, numbers and
// bools as in Go, nil as nothing.
func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return b
	case string:
		return append(b, v...)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, v)
	case []byte:
		return append(b, v...)
	default:
		return fmt.Append(b, v)
	}
}
