package store

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/layout"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// Checks of the -wal and -journal stock SQLite leaves beside a database,
// before Open folds them in and for ejectsafe verify: a file that belongs
// to another database would be applied to this one page by page.
//
// WAL file: the layout and SQLite's validity conditions are documented,
// and read, in package sqlitewal (one reader of SQLite's WAL for the
// project).
//
// Validity, as SQLite's recovery decides it (sqlitewal.Walk): (1) the
// header's magic, version, page size and checksum are right, else SQLite
// ignores the whole file; (2) frames count only up to the first whose
// salts, page number or checksum are wrong; (3) of those, only frames up
// to the last commit frame are committed.
//
// Belonging to this database (what SQLite does not check): (4) the page
// size is the database's; (5) a commit frame's page number is within the
// size it commits; (6) every copy of page 1 in the WAL starts with
// SQLite's header and names the WAL's page size; (7) the WAL continues
// this database's page 1: every transaction that writes page 1 adds one
// to its change counter (header offset 24) and one that changes the size
// writes it (offset 28), so either the database's page 1 is one of the
// WAL's copies (a checkpoint copied it back), or the WAL's first copy
// counts one more than the database's, and transactions before it commit
// the database's size; (8) folded in, the database passes quick_check
// (Open runs it before the fold is checkpointed; verify runs
// integrity_check on a copy).
//
// Rollback journal header (pager.c), big-endian: 0 magic d9d505f920a163d7,
// 8 record count, 12 nonce, 16 database size in pages before the
// transaction, 20 sector size, 24 page size. A hot journal is applied to
// the database on the next read; (9) its page size must be the
// database's.

// ErrForeignLog means a -wal or -journal beside the database does not
// belong to it (the checks above): folding it in would write another
// database's pages into this one. Open refuses, modifying nothing; move
// the file away if it is not wanted. ejectsafe verify reports it.
var ErrForeignLog = errors.New("store: -wal or -journal does not belong to this database")

// walInfo is what checkWAL found in a WAL file.
type walInfo struct {
	Valid     bool   // (1): SQLite uses the file
	PageSize  int    // from the header
	Committed int    // committed frames (3)
	Problem   string // why it does not belong to the database, or ""
}

// checkWAL reads a WAL file's bytes and checks them against the database
// whose first page is dbPage1 (nil when the database is empty: anything
// fits).
func checkWAL(b []byte, dbPage1 []byte) walInfo {
	var w walInfo
	dbPageSize := sqlitewal.DBHeaderPageSize(dbPage1)
	var problem string
	var commits []walCommit
	var page1 []byte // page 1 in the transaction being read
	ps := walkWAL(bytes.NewReader(b), func(f sqlitewal.Frame, page []byte) bool {
		off, pgno, commit := f.Offset, f.Page, f.Commit
		switch {
		case problem != "":
		case commit != 0 && pgno > commit:
			problem = fmt.Sprintf("frame at %d commits page %d of a %d-page database", off, pgno, commit)
		case pgno == 1 && string(page[:len(sqliteHeader)]) != sqliteHeader:
			problem = fmt.Sprintf("frame at %d holds a page 1 without SQLite's header", off)
		case pgno == 1 && sqlitewal.DBHeaderPageSize(page) != len(page):
			problem = fmt.Sprintf("frame at %d holds a page 1 naming page size %d in a WAL of %d", off, sqlitewal.DBHeaderPageSize(page), len(page))
		}
		if pgno == 1 {
			page1 = bytes.Clone(page) // the walk reuses its buffer
		}
		if commit != 0 {
			w.Committed = f.Index
			if problem != "" && w.Problem == "" {
				w.Problem = problem
			}
			commits = append(commits, walCommit{size: commit, page1: page1})
			page1 = nil
		}
		return true
	})
	if ps == 0 {
		return w
	}
	w.Valid, w.PageSize = true, ps
	switch {
	case w.Committed == 0 || w.Problem != "" || dbPageSize == 0:
	case ps != dbPageSize:
		w.Problem = fmt.Sprintf("its page size is %d, the database's %d", ps, dbPageSize)
	default:
		w.Problem = walLineage(commits, dbPage1)
	}
	return w
}

// walkWAL walks an SQLite WAL as SQLite's recovery does
// (sqlitewal.Walk): fn sees each valid frame and its page (in a buffer
// the walk reuses) and returns false to stop. walkWAL returns the WAL's
// page size, 0 when SQLite would not use the file (a header of another
// format version included: SQLite refuses the database then, and the
// file is not this database's either way).
func walkWAL(r io.ReaderAt, fn func(f sqlitewal.Frame, page []byte) bool) int {
	s, err := sqlitewal.Walk(r, fn)
	for _, bad := range []error{sqlitewal.ErrShortHeader, sqlitewal.ErrBadMagic, sqlitewal.ErrPageSize,
		sqlitewal.ErrHeaderChecksum, sqlitewal.ErrVersion} {
		if errors.Is(err, bad) {
			return 0
		}
	}
	if err != nil && s.Header.PageSize == 0 { // the header could not be read
		return 0
	}
	return s.Header.PageSize
}

// walCommit is one committed transaction of a WAL: the size it commits
// and its last copy of page 1 (nil if it wrote none).
type walCommit struct {
	size  uint32
	page1 []byte
}

// walLineage is check (7): "" when the WAL's commits continue the
// database whose page 1 is dbPage1, else why not.
func walLineage(commits []walCommit, dbPage1 []byte) string {
	counter := binary.BigEndian.Uint32(dbPage1[24:])
	size, sizeKnown := binary.BigEndian.Uint32(dbPage1[28:]), counter == binary.BigEndian.Uint32(dbPage1[92:])
	for _, c := range commits {
		if c.page1 != nil && string(c.page1) == string(dbPage1) {
			return "" // a checkpoint copied this very page 1 into the database
		}
	}
	for i, c := range commits {
		if c.page1 != nil {
			if got := binary.BigEndian.Uint32(c.page1[24:]); got != counter+1 {
				return fmt.Sprintf("its first copy of page 1 has change counter %d, not one more than the database's %d: it continues another database's history", got, counter)
			}
			return ""
		}
		if sizeKnown && c.size != size {
			return fmt.Sprintf("transaction %d commits a %d-page database without writing page 1; the database has %d pages", i+1, c.size, size)
		}
	}
	return ""
}

// journalMagic starts a rollback journal's header.
var journalMagic = []byte(layout.RollbackMagic)

// checkJournal checks a rollback journal's header against the database's
// page size (8). A journal whose header is not there (zeroed, or too
// short) is not hot: SQLite ignores it, and so does this check.
func checkJournal(hdr []byte, dbPageSize int) (hot bool, problem string) {
	if len(hdr) < 28 || string(hdr[:8]) != string(journalMagic) {
		return false, ""
	}
	ps := int(binary.BigEndian.Uint32(hdr[24:]))
	if dbPageSize != 0 && ps != dbPageSize {
		return true, fmt.Sprintf("its page size is %d, the database's %d", ps, dbPageSize)
	}
	return true, ""
}

// StockFinding is what InspectStock says of one of stock SQLite's files
// beside a database.
type StockFinding struct {
	Path string
	// Note says what the file is and what Open would do with it.
	Note string
	// Foreign: the file does not belong to the database; Open refuses
	// it (ErrForeignLog).
	Foreign bool
	// Unchecked: whether the file belongs to the database could not be
	// told (the database alone is damaged, or too large to copy to try
	// the fold); Note says why. Not clean either.
	Unchecked bool
}

// InspectStock checks, reading only, the -wal and -journal beside the
// database at path (on the OS's filesystem) as Open does before folding
// them in: the structural checks above, and for a -wal that passes them,
// the fold itself, tried on copies of the database and the -wal in a
// temporary directory of the host and judged by integrity_check (it
// reads and copies the whole database). It is ejectsafe verify's check.
func InspectStock(path string) ([]StockFinding, error) {
	var out []StockFinding
	page1, err := dbPage1(device.OS, path)
	if err != nil {
		return nil, err
	}
	ps := sqlitewal.DBHeaderPageSize(page1)
	if err := checkStockJournal(device.OS, path); errors.Is(err, ErrForeignLog) {
		out = append(out, StockFinding{Path: path + journalSuffix, Note: err.Error(), Foreign: true})
	} else if err != nil {
		return nil, err
	} else if hdr, err := readFileHead(path+journalSuffix, 28); err == nil && ps != 0 {
		if hot, _ := checkJournal(hdr, ps); hot {
			out = append(out, StockFinding{Path: path + journalSuffix, Note: "a hot rollback journal stock SQLite left: Open rolls it back"})
		}
	} else if !errors.Is(err, fs.ErrNotExist) && err != nil {
		return nil, err
	}

	walPath := path + walSuffix
	// Missing, empty, or a retired redo log (its header zeros, whatever
	// its size): SQLite reads nothing of it. Told from its header, before
	// the whole file is read.
	if live, err := walLive(device.OS, path); err != nil || !live {
		return out, err
	}
	b, err := readWhole(device.OS, walPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return out, nil
	case err != nil:
		return nil, err
	}
	w := checkWAL(b, page1)
	switch {
	case w.Problem != "":
		return append(out, StockFinding{Path: walPath, Note: "does not belong to the database: " + w.Problem, Foreign: true}), nil
	case !w.Valid || w.Committed == 0:
		return append(out, StockFinding{Path: walPath, Note: "holds no committed transaction: SQLite ignores it; Open removes it"}), nil
	}
	alone, res, err := tryFold(path, b)
	var tooLarge *foldTooLarge
	switch {
	case errors.As(err, &tooLarge):
		return append(out, StockFinding{Path: walPath, Unchecked: true,
			Note: fmt.Sprintf("%d committed frames stock SQLite left; not checked: %v (Open checks them before it folds them in)", w.Committed, tooLarge)}), nil
	case err != nil:
		return nil, err
	case alone != "ok":
		// The fold cannot tell whether the -wal fits a damaged database.
		return append(out, StockFinding{Path: walPath, Unchecked: true,
			Note: fmt.Sprintf("%d committed frames stock SQLite left; not judged: the database alone fails integrity_check (%s), and Open refuses to fold them in (ErrDamaged); %s", w.Committed, alone, keepWALData)}), nil
	case res != "ok":
		return append(out, StockFinding{Path: walPath, Foreign: true,
			Note: fmt.Sprintf("does not belong to the database: the database alone passes integrity_check; with its %d committed frames folded in, integrity_check says: %s; %s", w.Committed, res, keepWALData)}), nil
	}
	return append(out, StockFinding{Path: walPath, Note: fmt.Sprintf("%d committed frames stock SQLite left; they fit the database, and Open folds them in", w.Committed)}), nil
}

// maxFoldCopy bounds the database and -wal InspectStock copies to the
// host's temporary directory to try the fold; a variable for tests.
var maxFoldCopy int64 = 2 << 30

// foldTooLarge is why tryFold did not copy: more than maxFoldCopy, or
// more than the temporary directory can take.
type foldTooLarge struct {
	need, limit int64
	dir         string
	free        bool // limit is the directory's free space
}

func (e *foldTooLarge) Error() string {
	if e.free {
		return fmt.Sprintf("the database and -wal (%d bytes) do not fit in %s (%d bytes free)", e.need, e.dir, e.limit)
	}
	return fmt.Sprintf("the database and -wal (%d bytes) are more than verify copies to try the fold (%d bytes)", e.need, e.limit)
}

// readWhole reads the file at name through fsys, up to the size Open
// would load.
func readWhole(fsys device.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name, device.ReadOnly)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	if n > maxStockWAL || n > DefaultMaxWALBytes*16 {
		return nil, fmt.Errorf("%s is %d bytes, more than Open loads (checkpoint it with the sqlite3 CLI first)", name, n)
	}
	b := make([]byte, n)
	if k, err := f.ReadAt(b, 0); int64(k) != n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// readFileHead reads up to n bytes at the start of the file at name.
func readFileHead(name string, n int) ([]byte, error) {
	f, err := device.OS.Open(name, device.ReadOnly)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return b[:k], nil
}

// tryFold copies the database and wal into a temporary directory of the
// host and runs integrity_check there through SQLite's default VFS: first
// on the database alone (alone), then with the WAL beside it (folded),
// which SQLite folds in as stock SQLite would. It refuses (*foldTooLarge)
// to copy more than maxFoldCopy or than the directory has free, keeping
// a tenth of it; the directory is removed on every return.
func tryFold(path string, wal []byte) (alone, folded string, err error) {
	src, err := device.OS.Open(path, device.ReadOnly)
	if err != nil {
		return "", "", err
	}
	defer src.Close()
	size, err := src.Size()
	if err != nil {
		return "", "", err
	}
	need := size + int64(len(wal))
	if need > maxFoldCopy {
		return "", "", &foldTooLarge{need: need, limit: maxFoldCopy}
	}
	tmp := os.TempDir()
	if free, err := device.OS.FreeSpace(tmp); err == nil && need > free-free/10 {
		return "", "", &foldTooLarge{need: need, limit: free, dir: tmp, free: true}
	}
	dir, err := os.MkdirTemp("", "ejectsafe-fold-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "db")
	dst, err := os.Create(cp) // on the host, in a directory of our own
	if err != nil {
		return "", "", err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, size))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	if alone, err = integrity(FileURI(cp, "immutable=1&mode=ro")); err != nil || alone != "ok" {
		return alone, "", err
	}
	if err := os.WriteFile(cp+walSuffix, wal, 0o600); err != nil {
		return "", "", err
	}
	folded, err = integrity(FileURI(cp, ""))
	return alone, folded, err
}

// integrity runs integrity_check on the database at uri through SQLite's
// default VFS, the answer's lines joined with "; " (SQLite's error, for
// a database too damaged to check).
func integrity(uri string) (string, error) {
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if isCorrupt(err) {
		return err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return "", err
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); isCorrupt(err) {
		return err.Error(), nil
	} else if err != nil {
		return "", err
	}
	return strings.Join(lines, "; "), nil
}
