package otlp

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// FuzzPartialSuccess: any answer body of a receiver, for any signal, is
// read without panic; a body that is not a response is taken as a plain
// success (the answer is informative; the data was accepted); the rejected
// count the sink uses is within the items sent, whatever the receiver says.
func FuzzPartialSuccess(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte{0x0a, 0x05, 0x08, 0x03, 0x12, 0x01, 'x'}) // partial_success{rejected 3, message "x"}
	f.Add(uint8(1), []byte{0x0a, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(uint8(2), []byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, s uint8, body []byte) {
		sig := otlpwire.Signal(s % 3)
		n, _, err := partialSuccess(sig, body)
		if err != nil {
			t.Fatalf("an answer made an error: %v", err)
		}
		const items = 5
		if r := rejectedOf(n, items); r < 0 || r > items || (n >= 0 && n <= items && r != n) {
			t.Fatalf("rejected %d of %d items counted as %d", n, items, r)
		}
	})
}
