//go:build !unix

package nats

import "os"

// lock does nothing where flock(2) does not exist: there, two servers on
// one data directory are not prevented.
func lock(*os.File) error { return nil }
