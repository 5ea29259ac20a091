package nats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrDataDirInUse: another process holds the embedded bus's data
// directory (a sluice running on it). Reach that process's server through
// its listener (bus.embedded.listen) instead.
var ErrDataDirInUse = errors.New("the data directory is in use by another process")

// lockFile, in EmbeddedConfig.DataDir, carries the lock of the server
// that has the store open.
const lockFile = "sluice.lock"

// lockDataDir creates dir if needed and takes its lock, failing with
// ErrDataDirInUse when another process has it. Closing the file releases
// the lock, as does the end of the process, however it ends.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s (%v)", ErrDataDirInUse, dir, err)
	}
	return f, nil
}
