package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/layout"
)

// chunkSize is the unit of copies and checksums: large enough that the
// per-call cost vanishes, small enough to keep memory flat.
const chunkSize = 1 << 20

// File names next to the database, from the table in package layout. The
// journal and the copies are named by package journal.
const (
	// journalTempSuffix follows the journal's name in the name of a new
	// journal being written (created, compacted or rebuilt) before it is
	// renamed over the journal. Recover removes it: it only ever carries
	// history that is already resolved.
	journalTempSuffix = layout.JournalTempSuffix
	// orphanInfix follows the database path in the name recovery moves a
	// copy to when it cannot vouch for it and there is no database to
	// prefer: the copy is kept for a human, out of the way.
	orphanInfix = layout.OrphanInfix
	// asideInfix follows the database path in the name of a file moved
	// out of the way on a person's choice (RecoverWith, ResetJournal):
	// the database, stock SQLite's -wal or -journal, a bad journal.
	asideInfix = layout.AsideInfix
)

// paths are the names of one database's files. All are cleaned and in
// the database's directory, so renames never cross filesystems.
type paths struct {
	db, dir  string
	journal  string // journal.Name(db)
	jtemp    string // the journal's own temporary file
	baseName string // filepath.Base(db)
	wal      string // stock SQLite's -wal: the in-place mode's redo log
}

func newPaths(dbPath string) paths {
	db := filepath.Clean(dbPath)
	j := journal.Name(db)
	return paths{db: db, dir: filepath.Dir(db), journal: j, jtemp: j + journalTempSuffix, baseName: filepath.Base(db),
		wal: db + layout.WALSuffix}
}

func (p paths) temp(gen uint64) string { return journal.TempName(p.db, gen) }

func (p paths) orphan(gen uint64, n int) string {
	s := p.db + orphanInfix + strconv.FormatUint(gen, 10)
	if n > 0 {
		s += "-" + strconv.Itoa(n)
	}
	return s
}

// buffer returns a scratch buffer of at least n bytes (at most
// chunkSize), reusing *buf.
func buffer(buf *[]byte, n int64) []byte {
	n = max(min(n, chunkSize), 4096)
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	return (*buf)[:n]
}

// readFull reads exactly len(p) bytes at off: a short read is an error,
// since the caller knows the file's size.
func readFull(f device.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == nil || err == io.EOF:
		return fmt.Errorf("read %s at %d: %w", f.Name(), off+int64(n), io.ErrUnexpectedEOF)
	}
	return err // the device's error names the operation and the file
}

// sumFile returns the database checksum of the first size bytes of f.
func sumFile(f device.File, size int64, buf *[]byte) (uint64, error) {
	h := journal.NewSum()
	b := buffer(buf, size)
	for off := int64(0); off < size; {
		k := min(int64(len(b)), size-off)
		if err := readFull(f, b[:k], off); err != nil {
			return 0, err
		}
		h.Write(b[:k])
		off += k
	}
	return h.Sum64(), nil
}

// statSum describes the file at name: whether it exists, its size, and,
// when want(size) says the size could match, its checksum. It opens the
// file read-only.
func statSum(fsys device.FS, name string, buf *[]byte, want func(size int64) bool) (FileSum, error) {
	fsum := FileSum{Name: name}
	f, err := fsys.Open(name, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return fsum, nil
	}
	if err != nil {
		return fsum, err
	}
	defer f.Close() // read-only: a close error changes nothing on the drive
	fsum.Exists = true
	if fsum.Size, err = f.Size(); err != nil {
		return fsum, err
	}
	if want(fsum.Size) {
		if fsum.Sum, err = sumFile(f, fsum.Size, buf); err != nil {
			return fsum, err
		}
		fsum.Summed = true
	}
	return fsum, nil
}

// matches reports whether fsum is size bytes with checksum sum. A missing
// database is the empty database.
func (f FileSum) matches(size int64, sum uint64) bool {
	if !f.Exists {
		return size == 0 && sum == emptySum
	}
	return f.Summed && f.Size == size && f.Sum == sum
}

// emptySum is the checksum of the empty database.
var emptySum = journal.Sum(nil)
