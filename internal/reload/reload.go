// Package reload holds what sluice's reloads of files share: the
// ingester's tokens and TLS files and the worker's rules directory reload
// when their files change, which a cheap Stamp of each file tells at every
// interval, and at once on SIGHUP, which Run answers.
//
// The package imports nothing of sluice's.
package reload

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"
)

// Stamp is a hash of the files' names, sizes and modification times,
// following links (Kubernetes swaps the files of a Secret or a ConfigMap
// by a link). A file that cannot be read is stamped as missing; "" is
// skipped.
func Stamp(paths ...string) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range paths {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\x00", p, st.Size(), st.ModTime().UnixNano())
		} else {
			fmt.Fprintf(h, "%s\x00missing\x00", p)
		}
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Run calls reload(false) every interval, to reload what changed, and
// reload(true) at once for each value received from hup (SIGHUP), to
// reload everything, until ctx ends. The calls are made one at a time, on
// the caller's goroutine.
func Run[T any](ctx context.Context, interval time.Duration, hup <-chan T, reload func(force bool)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload(true)
		case <-t.C:
			reload(false)
		}
	}
}
