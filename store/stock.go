package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
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
	if retired, err := sqlitewal.Retired(f, n); err != nil {
		return false, fmt.Errorf("stock WAL: %w", err)
	} else if retired {
		// Empty, or the redo log an in-place checkpoint retired (a
		// header of zeros): SQLite reads it as an empty WAL. Left where
		// it is: the next in-place checkpoint writes its log into it.
		return false, nil
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
	// One that belongs to another database is refused before SQLite
	// sees it (stockcheck.go); what these checks cannot see, quick_check
	// does once it is loaded (Store.open).
	page1, err := dbPage1(fsys, path)
	if err != nil {
		return false, fmt.Errorf("stock WAL: %w", err)
	}
	if w := checkWAL(buf, page1); w.Problem != "" {
		return false, fmt.Errorf("%w: %s: %s; nothing was modified", ErrForeignLog, path+walSuffix, w.Problem)
	}
	if err := walLoad(path, buf); err != nil {
		return false, err
	}
	return n > 0, nil
}

// walLive reports whether a -wal is beside the database at path that
// SQLite would read something from: one that exists and is not retired
// (checkpoint.LogState).
func walLive(fsys device.FS, path string) (bool, error) {
	exists, retired, err := checkpoint.LogState(fsys, path+walSuffix)
	return exists && !retired, err
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

// dbPage1 reads the database's first page, whose size its header names;
// nil for a database that is missing, empty or shorter than that.
func dbPage1(fsys device.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr := make([]byte, 100)
	if n, err := f.ReadAt(hdr, 0); n < len(hdr) {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, nil
	}
	ps := sqlitewal.DBHeaderPageSize(hdr)
	if !sqlitewal.ValidPageSize(ps) {
		return nil, nil // not a header SQLite would use
	}
	page := make([]byte, ps)
	if n, err := f.ReadAt(page, 0); n < ps {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, nil
	}
	return page, nil
}

// checkStockJournal refuses a hot rollback journal that belongs to
// another database (its page size differs): SQLite would play its pages
// back into this one on the first read.
func checkStockJournal(fsys device.FS, path string) error {
	f, err := fsys.Open(path+journalSuffix, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stock journal: %w", err)
	}
	hdr := make([]byte, 28)
	n, rerr := f.ReadAt(hdr, 0)
	f.Close()
	if rerr != nil && rerr != io.EOF {
		return fmt.Errorf("stock journal: %w", rerr)
	}
	page1, err := dbPage1(fsys, path)
	ps := sqlitewal.DBHeaderPageSize(page1)
	if err != nil || ps == 0 {
		return err // an empty database: SQLite plays no journal back
	}
	if _, problem := checkJournal(hdr[:n], ps); problem != "" {
		return fmt.Errorf("%w: %s: %s; nothing was modified", ErrForeignLog, path+journalSuffix, problem)
	}
	return nil
}

// quickCheck runs PRAGMA quick_check on c and returns its answer, the
// lines joined with "; ".
func quickCheck(ctx context.Context, c *sql.Conn) (string, error) {
	rows, err := c.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return "", err
		}
		out = append(out, l)
	}
	return strings.Join(out, "; "), rows.Err()
}

// isCorrupt reports whether err is SQLite finding the database malformed
// or not a database.
func isCorrupt(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB)
}

// maxAloneCheck bounds the database checkAlone reads into memory.
const maxAloneCheck = 256 << 20

// keepWALData says how a person keeps the data of a -wal that is the
// database's own when ejectsafe will not fold it in.
const keepWALData = "if the -wal is this database's own and its data is wanted, fold it in with the stock tool (sqlite3 DB 'PRAGMA wal_checkpoint'), then run ejectsafe verify"

// checkAlone runs quick_check on the database file alone, read through
// fsys into memory (no -wal, nothing written anywhere): what tells a
// damaged database from a -wal that does not fit it. checked is false for
// a database larger than maxAloneCheck.
func checkAlone(fsys device.FS, path string) (res string, checked bool, err error) {
	f, err := fsys.Open(path, device.ReadOnly)
	if err != nil {
		return "", false, err
	}
	defer f.Close() // read-only
	n, err := f.Size()
	if err != nil {
		return "", false, err
	}
	if n > maxAloneCheck {
		return "", false, nil
	}
	b := make([]byte, n)
	if k, err := f.ReadAt(b, 0); int64(k) != n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", false, err
	}
	if len(b) > 19 && b[18] == 2 && b[19] == 2 {
		// A WAL-mode header: an in-memory database cannot open a WAL,
		// and here there is none to open.
		b[18], b[19] = 1, 1
	}
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		return "", false, err
	}
	defer db.Close()
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	if err := c.Raw(func(dc any) error { return dc.(*sqlite3.SQLiteConn).Deserialize(b, "main") }); err != nil {
		return "", false, err
	}
	res, err = quickCheck(ctx, c)
	if isCorrupt(err) {
		return err.Error(), true, nil
	}
	return res, err == nil, err
}
