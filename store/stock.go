package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/ejectsafe/ejectsafe/device"
)

// maxStockWAL bounds the stock WAL file Open will load into memory.
const maxStockWAL = 1 << 30

// loadStockWAL reads the -wal file that stock SQLite may have left next to
// the database (committed transactions not yet checkpointed) into the
// in-memory WAL, so that SQLite recovers it exactly as stock SQLite would.
// It reports whether there was one. The file itself is removed only after
// its content is durable in the database (removeStockFiles).
func loadStockWAL(fsys device.FS, path string) (bool, error) {
	f, err := fsys.Open(path+walSuffix, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stock WAL: %w", err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return false, fmt.Errorf("stock WAL: %w", err)
	}
	if n > maxStockWAL || n > DefaultMaxWALBytes*16 {
		return false, fmt.Errorf("stock WAL %s is %d bytes; checkpoint it with the sqlite3 CLI first: %w", path+walSuffix, n, ErrBadOptions)
	}
	buf := make([]byte, n)
	if got, err := f.ReadAt(buf, 0); int64(got) != n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return false, fmt.Errorf("stock WAL: %w", err)
	}
	if err := walLoad(path, buf); err != nil {
		return false, err
	}
	return n > 0, nil
}

// removeStockFiles deletes the -wal and -shm that stock SQLite left, once
// their content is durable in the database, and makes the removal durable:
// a -wal found again after newer checkpoints would replay old pages.
func removeStockFiles(fsys device.FS, path string) error {
	for _, suf := range []string{walSuffix, shmSuffix} {
		if err := fsys.Remove(path + suf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stock %s: %w", suf, err)
		}
	}
	return fsys.SyncDir(filepath.Dir(path))
}
