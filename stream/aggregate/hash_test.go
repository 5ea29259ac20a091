package aggregate

import (
	"testing"
)

func TestHasher(t *testing.T) {
	pts := []P{
		{T: 1, Attrs: []string{"a", "1", "b", "2"}},
		{T: 1, Attrs: []string{"b", "2", "a", "1"}}, // same set, other order
		{T: 1, Attrs: []string{"a", "1", "b", "3"}},
		{T: 1, Attrs: []string{"a", "1"}},
		{T: 1, Attrs: []string{"a", "2", "b", "1"}}, // values swapped between keys
	}
	var h Hasher
	series := func(m M, tenant string) []uint64 {
		b, _, _ := batchOf(t, m, pts)
		defer b.Release()
		if err := h.Reset(b); err != nil {
			t.Fatal(err)
		}
		var r []uint64
		for i := range pts {
			r = append(r, h.Series(tenant, i))
		}
		if a := testing.AllocsPerRun(10, func() { h.Series(tenant, 0); h.Metric(tenant, 0); h.Family(tenant, 0) }); a != 0 {
			t.Errorf("Series allocates %v", a)
		}
		if h.Family(tenant, 0) != h.Family(tenant, 4) {
			t.Error("Family depends on point attributes")
		}
		return append(r, h.Metric(tenant, 0), h.Metric(tenant, 3), h.Family(tenant, 0))
	}
	s := series(mCum, "t1")
	if s[0] != s[1] {
		t.Error("attribute order changes the hash")
	}
	for _, i := range []int{2, 3, 4} {
		if s[i] == s[0] {
			t.Errorf("point %d: other attributes, same hash", i)
		}
	}
	if s[5] != s[6] {
		t.Error("Metric depends on point attributes")
	}
	for name, o := range map[string][]uint64{"tenant": series(mCum, "t2"), "temporality": series(mDelta, "t1"), "type": series(mGauge, "t1")} {
		if o[0] == s[0] {
			t.Errorf("%s does not change Series", name)
		}
		if o[7] == s[7] {
			t.Errorf("%s does not change Family", name)
		}
	}
	if o := series(mDelta, "t1"); o[5] != s[5] {
		t.Error("temporality changes Metric")
	}
}
