package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// bucket(value, bounds) names the range of bounds that value falls in:
// "<b0" below the first bound, "bi-bj" from a bound (inclusive) to the
// next (exclusive), ">=bn" from the last bound up. It turns a number into a
// label of few values, to cut a label's cardinality.
//
// The bounds are a literal array of strictly ascending numbers, checked
// when the rules load (checkBucket); each call site gets a bucketer with
// the bounds as float64 and its labels formatted and boxed once, so a call
// allocates nothing. The site is a hidden third argument added by
// sitePatcher: bucket(value, bounds, site).
type bucketer struct {
	bounds []float64
	labels []any // len(bounds)+1 strings
}

func newBucketer(bounds []float64) *bucketer {
	b := &bucketer{bounds: bounds, labels: make([]any, 0, len(bounds)+1)}
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	b.labels = append(b.labels, "<"+num(bounds[0]))
	for i := 1; i < len(bounds); i++ {
		b.labels = append(b.labels, num(bounds[i-1])+"-"+num(bounds[i]))
	}
	b.labels = append(b.labels, ">="+num(bounds[len(bounds)-1]))
	return b
}

// label returns the label of x's range: the first bound above x picks it.
func (b *bucketer) label(x float64) any {
	i, j := 0, len(b.bounds)
	for i < j {
		h := int(uint(i+j) >> 1)
		if b.bounds[h] <= x {
			i = h + 1
		} else {
			j = h
		}
	}
	return b.labels[i]
}

func (f *functions) bucketFunc() expr.Option {
	return expr.Function("bucket", f.bucket, new(func(...any) string)) // arguments checked by checkBucket
}

// bucket is called as bucket(value, bounds, site).
func (f *functions) bucket(args ...any) (any, error) {
	site, _ := args[2].(int)
	if site < 0 || site >= len(f.buckets) || f.buckets[site] == nil {
		// Not reached: every call site is checked at load.
		return nil, fmt.Errorf("bucket: call site %d was not prepared at load", site)
	}
	x, err := numberArg("bucket", args[0])
	if err != nil {
		return nil, err
	}
	if math.IsNaN(x) {
		return nil, fmt.Errorf("bucket: NaN is in no range")
	}
	return f.buckets[site].label(x), nil
}

// numberArg reads v as a number: an int, a float or a string holding one
// (surrounding spaces allowed, as parse_float reads it).
func numberArg(fn string, v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case int32:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number", fn, x)
		}
		return n, nil
	case nil:
		return 0, fmt.Errorf("%s: want a number, got nil (missing attribute?)", fn)
	}
	return 0, fmt.Errorf("%s: want a number, got %T", fn, v)
}

// checkBucket checks the bounds of a bucket call when the rules load and
// prepares its call site.
func (w *walker) checkBucket(n *ast.CallNode) {
	site, ok := siteOf(n, 3, len(w.c.funcs.buckets))
	if !ok {
		w.errorAt(n, "bucket takes two arguments, a value and the bounds: bucket(x, [10, 100, 1000])")
		return
	}
	bounds, msg := literalBounds(n.Arguments[1])
	if msg != "" {
		w.errorAt(n.Arguments[1], "bucket: "+msg)
		return
	}
	w.c.funcs.buckets[site] = newBucketer(bounds)
}

// literalBounds reads the bounds of bucket: a literal array of numbers in
// ascending order, which the optimizer has folded into a constant.
func literalBounds(n ast.Node) ([]float64, string) {
	const want = "the bounds must be a literal array of ascending numbers, e.g. [10, 100, 1000]"
	c, ok := n.(*ast.ConstantNode)
	if !ok {
		if a, ok := n.(*ast.ArrayNode); ok && len(a.Nodes) == 0 {
			return nil, "no bounds: " + want
		}
		return nil, want
	}
	vals, ok := c.Value.([]any)
	if !ok || len(vals) == 0 {
		return nil, want
	}
	bounds := make([]float64, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case int:
			bounds[i] = float64(x)
		case float64:
			bounds[i] = x
		default:
			return nil, fmt.Sprintf("bound %d is %s, not a number: %s", i+1, typeName(v), want)
		}
		if math.IsInf(bounds[i], 0) || math.IsNaN(bounds[i]) {
			return nil, fmt.Sprintf("bound %d is not finite", i+1)
		}
		if i > 0 && bounds[i] <= bounds[i-1] {
			return nil, fmt.Sprintf("the bounds must ascend: %v after %v", v, vals[i-1])
		}
	}
	return bounds, ""
}

// siteOf reads the call site that sitePatcher added to call n as its
// argument 2, and reports false when n does not have the want arguments
// it should then have.
func siteOf(n *ast.CallNode, want, sites int) (int, bool) {
	if len(n.Arguments) != want {
		return 0, false
	}
	i, ok := n.Arguments[2].(*ast.IntegerNode)
	if !ok || i.Value < 0 || i.Value >= sites {
		return 0, false
	}
	return i.Value, true
}
