package stream

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestErrorHeaderIsCut(t *testing.T) {
	short := ErrorHeader("bad request")
	if short.Key != HeaderError || string(short.Value) != "bad request" {
		t.Errorf("short reason: %q %q", short.Key, short.Value)
	}
	long := ErrorHeader(strings.Repeat("é", MaxErrorHeader)) // 2 bytes a rune: the cut falls inside one
	if len(long.Value) > MaxErrorHeader || !utf8.Valid(long.Value) || !strings.HasSuffix(string(long.Value), "...") {
		t.Errorf("long reason cut to %d bytes, valid UTF-8 %v: %q", len(long.Value), utf8.Valid(long.Value), long.Value)
	}
}

func TestTenant(t *testing.T) {
	for _, tc := range []struct {
		hdrs []Header
		want string
		err  string
	}{
		{nil, "", ""},
		{[]Header{{Key: HeaderTenant}}, "", ""},
		{[]Header{{Key: HeaderTenant, Value: []byte("team-a")}}, "team-a", ""},
		{[]Header{{Key: HeaderTenant, Value: []byte("../../x")}}, "", `record t.raw/2@7: header sluice-tenant: invalid tenant "../../x"`},
		{[]Header{{Key: HeaderTenant, Value: []byte("victim|other")}}, "", `invalid tenant "victim|other"`},
		{[]Header{{Key: HeaderTenant, Value: []byte("..")}}, "", `invalid tenant ".."`},
	} {
		r := &Record{Topic: "t.raw", Partition: 2, Offset: 7, Headers: tc.hdrs}
		got, err := r.Tenant()
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Tenant() of %v = %q, %v; want %q and an error with %q", tc.hdrs, got, err, tc.want, tc.err)
		}
	}
}
