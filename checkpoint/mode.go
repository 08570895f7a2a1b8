package checkpoint

import (
	"fmt"

	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// Mode is how a commit writes its generation to the drive.
type Mode int

const (
	// ModeCopy (the zero value) writes a copy of the whole database and
	// renames it over the database (commit.go): the database file is
	// never written in place, and a commit costs the whole file.
	ModeCopy Mode = iota
	// ModeInPlace writes the changed pages into the database file, after
	// a redo log of them in SQLite's own WAL format made them recoverable
	// (inplace.go): a commit costs about twice the changed pages. Where a
	// commit cannot go in place (inPlaceBlocked) it copies.
	ModeInPlace
	// ModeAuto picks per commit the mode that should cost less time on
	// this drive (chooseMode).
	ModeAuto
)

func (m Mode) String() string {
	switch m {
	case ModeCopy:
		return "copy"
	case ModeInPlace:
		return "in place"
	case ModeAuto:
		return "auto"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// inPlaceBlocked says why the commit of pend over src, to size bytes,
// cannot be written in place, or "" when it can.
func (m *Main) inPlaceBlocked(pend *level, size int64, src *baseRef, stale bool) string {
	switch {
	case !sqlitewal.ValidPageSize(int(m.bs)):
		return "the block size is not an SQLite page size"
	case size%m.bs != 0 || src.size%m.bs != 0:
		return "the database is not whole pages"
	case src.f == nil || src.size == 0:
		return "there is no database file to write into"
	case stale:
		return "the base handle is not the database file at its name"
	case !m.pageSizeIsBlock(pend, src):
		return "the database's page size is not the block size"
	case size == 0:
		return "the database is empty"
	case m.opts.NoGrowInPlace && size > src.size:
		return "the database grows, and this filesystem corrupts files extended in place"
	case len(inPlacePages(pend, size, src.size, m.bs)) == 0:
		return "no page changed"
	}
	return ""
}

// rate is the write speed observed for one mode on this drive: bytes
// per second, a moving average over commits that wrote at least
// rateMinBytes (smaller ones measure the fsyncs' latency, not the
// drive's speed).
type rate struct {
	bps float64
	n   int
}

const rateMinBytes = 1 << 20

func (r *rate) observe(bytes int64, secs float64) {
	if bytes < rateMinBytes || secs <= 0 {
		return
	}
	v := float64(bytes) / secs
	if r.n == 0 {
		r.bps = v
	} else {
		r.bps = 0.7*r.bps + 0.3*v
	}
	r.n++
}

// estimate is what a commit would write in each mode.
type estimate struct {
	copyBytes    int64 // the whole new database
	inPlaceBytes int64 // the redo log and the pages written again
	free         int64 // free space on the drive; -1 when it cannot tell
	copyNeed     int64 // free space the copy needs
	inPlaceNeed  int64 // free space the in-place commit needs
}

// randomPenalty is how much slower than a sequential copy the in-place
// writes are assumed to go until both have been measured on this drive:
// they are scattered over the file, and cheap flash writes scattered
// blocks far slower than a stream.
const randomPenalty = 2

// chooseMode is ModeAuto's rule, a pure function of what the commit
// would write and the speeds observed on this drive:
//
//  1. a mode whose bytes do not fit the free space is out (the other is
//     taken even if it does not fit either: its write reports ENOSPC);
//  2. once both modes have been measured here, the one whose bytes take
//     less time at its observed speed;
//  3. before that, bytes weighed by randomPenalty: in place when its
//     bytes times the penalty are fewer than the copy's (with one mode
//     measured, the other's speed is taken as that one's, scaled by the
//     penalty).
func chooseMode(e estimate, copyRate, inPlaceRate rate) Mode {
	if e.free >= 0 {
		copyFits, inPlaceFits := e.copyNeed <= e.free, e.inPlaceNeed <= e.free
		switch {
		case inPlaceFits && !copyFits:
			return ModeInPlace
		case copyFits && !inPlaceFits:
			return ModeCopy
		}
	}
	cb, ib := copyRate.bps, inPlaceRate.bps
	switch {
	case copyRate.n > 0 && inPlaceRate.n > 0:
	case copyRate.n > 0:
		ib = cb / randomPenalty
	case inPlaceRate.n > 0:
		cb = ib * randomPenalty
	default:
		cb, ib = randomPenalty, 1
	}
	if float64(e.inPlaceBytes)/ib < float64(e.copyBytes)/cb {
		return ModeInPlace
	}
	return ModeCopy
}

// pageSizeIsBlock reports whether the database's page size, before and
// after the commit, is the block size: the redo log's pages are blocks,
// and SQLite reads a -wal only in its database's page size (a log of
// other pages beside a database pulled mid-write is "malformed" to it).
func (m *Main) pageSizeIsBlock(pend *level, src *baseRef) bool {
	hdr := make([]byte, 18)
	if err := readFull(src.f, hdr, 0); err != nil || int64(sqlitewal.DBHeaderPageSize(hdr)) != m.bs {
		return false
	}
	p1, ok, err := m.block(pend, 0, make([]byte, m.bs))
	if err != nil || ok && int64(sqlitewal.DBHeaderPageSize(p1)) != m.bs {
		return false
	}
	return true
}
