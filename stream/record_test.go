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
