package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/ejectsafe/ejectsafe/device"
)

// checkPathReadOnly refuses what a read-only Store cannot open: the
// database must exist (it cannot be created) and be SQLite. Permissions
// do not matter: nothing is written.
func checkPathReadOnly(fsys device.FS, path string) error {
	dir := filepath.Dir(path)
	dfi, err := fsys.Stat(dir)
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	if !dfi.IsDir() {
		return fmt.Errorf("parent %s: %w", dir, syscall.ENOTDIR)
	}
	fi, err := fsys.Stat(path)
	if err != nil {
		return fmt.Errorf("read-only: the database must exist: %w", err)
	}
	switch {
	case fi.IsDir():
		return ErrIsDirectory
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: not a regular file (%s)", ErrNotDatabase, fi.Mode().Type())
	case fi.Size() == 0:
		return nil // an empty database
	}
	return checkHeader(fsys, path)
}

// checkReadOnlyState refuses a database that only a writable Open could
// bring to a consistent state: stock SQLite's -wal (committed data not in
// the database yet) or -journal (an interrupted transaction). An
// interrupted ejectsafe checkpoint is refused by the main file's Open.
func checkReadOnlyState(fsys device.FS, path string) error {
	needs := func(suf string) error {
		return fmt.Errorf("%w: %s%s is left by SQLite and needs recovery; open the database writable once", ErrReadOnly, filepath.Base(path), suf)
	}
	// A -wal SQLite reads nothing of (empty, or a redo log an in-place
	// checkpoint retired) needs nothing.
	if live, err := walLive(fsys, path); err != nil {
		return err
	} else if live {
		return needs(walSuffix)
	}
	fi, err := fsys.Stat(path + journalSuffix)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Size() > 0:
		return needs(journalSuffix)
	}
	return nil
}
