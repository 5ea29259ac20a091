package kafka

import (
	"strings"
	"testing"
)

// TestCompressionLevels: every codec with its valid levels is accepted, and
// a level out of range or on a codec without levels is refused with a
// message that names both.
func TestCompressionLevels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level int
		want  string // "" when valid
	}{
		{"zstd", 0, ""}, {"zstd", 1, ""}, {"zstd", 4, ""},
		{"gzip", 0, ""}, {"gzip", 9, ""}, {"lz4", 0, ""}, {"lz4", 9, ""},
		{"snappy", 0, ""}, {"none", 0, ""},
		{"zstd", 5, "compression level 5 for zstd: want 1 to 4"},
		{"gzip", -1, "compression level -1 for gzip: want 1 to 9"},
		{"lz4", 10, "compression level 10 for lz4: want 1 to 9"},
		{"snappy", 1, "snappy has no levels"},
		{"brotli", 0, `compression "brotli"`},
	} {
		err := Config{Brokers: []string{"x:9092"}, Compression: tc.name, CompressionLevel: tc.level}.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s level %d: %v", tc.name, tc.level, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s level %d: %v, want %q", tc.name, tc.level, err, tc.want)
		}
	}
}
