//go:build unix

package nats

import (
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock of f without waiting.
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
