package columnar

import (
	"strconv"
	"testing"
)

// TestBoxer: boxed values stay what they were boxed as while chunks grow
// from boxFirst to boxChunk and are replaced, and a batch boxing a few
// values allocates a small chunk only.
func TestBoxer(t *testing.T) {
	var b boxer
	var vs, fs []any
	for i := range 3 * boxChunk {
		vs = append(vs, b.string(strconv.Itoa(i)))
		fs = append(fs, b.float(float64(i)+0.5))
	}
	for i := range vs {
		if vs[i] != strconv.Itoa(i) || fs[i] != float64(i)+0.5 {
			t.Fatalf("value %d: %v, %v", i, vs[i], fs[i])
		}
	}
	if cap(b.strs) != boxChunk {
		t.Fatalf("chunks grew to %d values, want %d", cap(b.strs), boxChunk)
	}
	b.drop()
	b.string("x")
	if cap(b.strs) != boxFirst {
		t.Fatalf("first chunk of a batch holds %d values, want %d", cap(b.strs), boxFirst)
	}
}
