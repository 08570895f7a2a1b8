package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// Recovery of an in-place checkpoint (inplace.go) in flight: the
// journal's last checkpoint ends in Intent{G, new}. The database may be
// the base, partly written, or new; the redo log, <db>-wal, may be
// missing, torn, ours and whole, or someone else's. Nothing in a log
// names its database, so a log is ours only by proof: its first
// transaction, applied over the database as it is now, gives exactly
// Intent's size and checksum. Then it may be applied, whatever the
// database holds of it already (a page written again with the same bytes
// changes nothing), and stock SQLite, which applies it by itself, agrees.

// logFacts is what recovery read of the -wal beside an in-place
// checkpoint in flight.
type logFacts struct {
	exists bool
	// committed: SQLite would apply something of it (a valid header and
	// at least one commit frame).
	committed bool
	// proves: its first transaction over the database gives Intent's
	// size and checksum.
	proves bool
	// more: valid frames follow its first transaction (stock SQLite
	// wrote on after applying it).
	more     bool
	pageSize int
	dbPages  uint32
	frames   map[uint32]int64 // page -> offset of its last frame in the first transaction
}

// readInPlaceLog reads the log at p.wal and proves it against the
// database at p.db and want (the checkpoint's Intent): its first
// transaction applied over the database must give want. It reads the log
// once and, when the transaction could give want's size, the database
// once.
func readInPlaceLog(fsys device.FS, p paths, want journal.Record, buf *[]byte) (logFacts, error) {
	return readLog(fsys, p, want, buf, false)
}

// readStockWAL proves a stock -wal the same way with every transaction
// SQLite would apply (all up to the last commit frame): for a copy-mode
// checkpoint whose copy is the database with that -wal folded in (Open's
// fold of a stock -wal, caught by a crash before its rename).
func readStockWAL(fsys device.FS, p paths, want journal.Record, buf *[]byte) (logFacts, error) {
	return readLog(fsys, p, want, buf, true)
}

func readLog(fsys device.FS, p paths, want journal.Record, buf *[]byte, all bool) (logFacts, error) {
	var lf logFacts
	f, err := fsys.Open(p.wal, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return lf, nil
	}
	if err != nil {
		return lf, err
	}
	defer f.Close() // read-only
	lf.exists = true
	first := 0 // frames up to the first (or, with all, the last) commit frame
	frames := map[uint32]int64{}
	// The transaction being read, page to its last frame: a map, not a
	// list of frames, so that a log that rewrites a few pages without end
	// and never commits costs memory by its distinct pages, not its size.
	open := map[uint32]int64{}
	scan, err := sqlitewal.Walk(f, func(fr sqlitewal.Frame, _ []byte) bool {
		if first > 0 && !all {
			lf.more = true
			return false
		}
		open[fr.Page] = fr.Offset
		if fr.Commit != 0 {
			maps.Copy(frames, open)
			clear(open)
			first, lf.dbPages = fr.Index, fr.Commit
		}
		return true
	})
	switch {
	case err != nil && isLogFormat(err):
		return lf, nil // a header SQLite ignores or refuses: nothing of it applies
	case err != nil:
		return lf, err
	case first == 0:
		return lf, nil // no commit frame: SQLite applies nothing
	}
	lf.committed, lf.pageSize, lf.frames = true, scan.Header.PageSize, frames
	size := int64(lf.dbPages) * int64(lf.pageSize)
	if size != want.Size {
		return lf, nil
	}
	sum, err := lf.sumApplied(fsys, p, f, buf)
	if err != nil {
		return lf, err
	}
	lf.proves = sum == want.Sum
	return lf, nil
}

// isLogFormat reports whether err is sqlitewal's verdict on a log's
// header, not an error reading it.
func isLogFormat(err error) bool {
	for _, e := range []error{sqlitewal.ErrShortHeader, sqlitewal.ErrBadMagic, sqlitewal.ErrPageSize,
		sqlitewal.ErrHeaderChecksum, sqlitewal.ErrVersion} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// pages returns the log's pages within its database size, ascending.
func (lf *logFacts) pages() []uint32 {
	var ps []uint32
	for pg := range lf.frames {
		if pg <= lf.dbPages {
			ps = append(ps, pg)
		}
	}
	slices.Sort(ps)
	return ps
}

// sumApplied returns the checksum of the database at p.db with the log's
// first transaction applied: its pages over the database's bytes (zeros
// past its end), cut or extended to the transaction's size.
func (lf *logFacts) sumApplied(fsys device.FS, p paths, log device.File, buf *[]byte) (uint64, error) {
	db, err := fsys.Open(p.db, device.ReadOnly)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	var dbSize int64
	if db != nil {
		defer db.Close() // read-only
		if dbSize, err = db.Size(); err != nil {
			return 0, err
		}
	}
	ps := int64(lf.pageSize)
	size := int64(lf.dbPages) * ps
	pages := lf.pages()
	h := journal.NewSum()
	b := buffer(buf, chunkSize)
	b = b[:max(len(b)/int(ps), 1)*int(ps)]
	for off := int64(0); off < size; {
		c := b[:min(int64(len(b)), size-off)]
		n := min(max(dbSize-off, 0), int64(len(c)))
		if n > 0 {
			if err := readFull(db, c[:n], off); err != nil {
				return 0, err
			}
		}
		clear(c[n:])
		for len(pages) > 0 && int64(pages[0]-1)*ps < off+int64(len(c)) {
			po := int64(pages[0]-1) * ps
			if err := readFull(log, c[po-off:po-off+ps], lf.frames[pages[0]]+sqlitewal.FrameHeaderSize); err != nil {
				return 0, err
			}
			pages = pages[1:]
		}
		h.Write(c)
		off += int64(len(c))
	}
	return h.Sum64(), nil
}

// applyInPlaceLog is recovery's roll forward of an in-place checkpoint:
// the log's first transaction, which proved to give the checkpoint's
// Intent, written into the database in ascending page order, the file
// cut or extended to the transaction's size, fsynced.
func applyInPlaceLog(fsys device.FS, p paths, lf logFacts) error {
	log, err := fsys.Open(p.wal, device.ReadOnly)
	if err != nil {
		return err
	}
	defer log.Close() // read-only
	db, err := fsys.Open(p.db, device.ReadWrite)
	if err != nil {
		return err
	}
	ps := int64(lf.pageSize)
	page := make([]byte, ps)
	for _, pg := range lf.pages() {
		if err := readFull(log, page, lf.frames[pg]+sqlitewal.FrameHeaderSize); err != nil {
			db.Close()
			return err
		}
		if _, err := db.WriteAt(page, int64(pg-1)*ps); err != nil {
			db.Close()
			return err
		}
	}
	size := int64(lf.dbPages) * ps
	if cur, err := db.Size(); err != nil || cur != size {
		if err == nil {
			err = db.Truncate(size)
		}
		if err != nil {
			db.Close()
			return err
		}
	}
	if err := db.Sync(); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// decideInPlace is decide for an in-place checkpoint in flight (cp ends
// in Intent): one of the in-place rows, or a person's choice.
func decideInPlace(p paths, f facts, cp journal.Checkpoint, d decision, torn bool) decision {
	d.state, d.gen = StateInPlace, cp.Gen
	intent, lf, db := cp.Ready, f.log, f.db
	files := []FileSum{db}
	refuse := func(r row, reason string) decision {
		d.row, d.action = r, ActionRefused
		d.err = &UnrecoverableError{DB: p.db, Reason: reason, Began: cp.Began, Ready: cp.Ready, Files: files}
		return d
	}
	aborted := journal.Record{Kind: journal.Aborted, Gen: cp.Gen}
	done := journal.Record{Kind: journal.Done, Gen: cp.Gen, Size: intent.Size, Sum: intent.Sum}
	ours := lf.proves && !lf.more // the log is this checkpoint's, and nothing else
	switch {
	case db.matches(intent.Size, intent.Sum):
		// The pages are in place (stock SQLite may have applied the log
		// itself). A log that is exactly ours describes this very state:
		// remove it; anything else in it is someone else's, for Open's
		// fold.
		d.row, d.action, d.record = rowInPlaceFinish, ActionFinish, done
		d.removeLog = ours || (lf.exists && !lf.committed)
	case f.choice == ChooseKeepDrive && !db.Exists:
		return refuse(rowKeepDriveNoDB, "--keep-drive needs a database on the drive, and there is none")
	case f.choice == ChooseKeepDrive:
		d.row, d.action, d.record = rowInPlaceKeepDrive, ActionRollBack, aborted
		d.notes = append(d.notes, "kept the database and its -wal as they are on the drive (--keep-drive); the next open folds the -wal in if it belongs to the database")
	case lf.proves && lf.more:
		return refuse(rowInPlaceStockAfter, "the in-place checkpoint's redo log (-wal) is followed by transactions stock SQLite wrote after applying it; keep them with ejectsafe recover --keep-drive (the next open folds the -wal in)")
	case ours && db.Exists:
		d.row, d.action, d.record = rowInPlaceForward, ActionRollForward, done
		d.applyLog, d.removeLog = true, true
	case f.choice == ChooseRollForward:
		return refuse(rowChooseForwardNoCopy, "--roll-forward needs the in-place checkpoint's redo log whole, and it is not")
	case db.matches(cp.Began.Size, cp.Began.Sum):
		// No page was written in place (they are written only once the
		// log is durable, and a durable log would prove). A log SQLite
		// applies nothing of is our torn one: removed. A valid one that
		// does not prove is someone else's writes over this database:
		// kept for Open's fold, which checks it.
		d.row, d.action, d.record = rowInPlaceBase, ActionRollBack, aborted
		d.removeLog = lf.exists && !lf.committed
	case torn:
		d.row, d.reset = rowTornReset, true
		d.notes = append(d.notes, fmt.Sprintf("database matches neither in-place checkpoint %d, its base, nor its base with the redo log applied; the torn journal lost later records", cp.Gen))
	default:
		return refuse(rowInPlaceNoMatch, "the database is neither the in-place checkpoint's base nor its new state, and no redo log (-wal) proves to make it the new state")
	}
	return d
}
