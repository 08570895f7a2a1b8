package sqlitewal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame is one valid frame, as Walk reports it.
type Frame struct {
	Index  int    // 1-based position in the file
	Offset int64  // of its frame header
	Page   uint32 // page number
	Commit uint32 // database size in pages after the commit, or 0
}

// Scan is what Walk found in a log whose header is valid.
type Scan struct {
	Header Header
	// Frames is the number of valid frames (conditions 6-9), from the
	// first.
	Frames int
	// Committed is how many of those SQLite replays: up to and including
	// the last commit frame (condition 10).
	Committed int
	// DBPages is the database size the last commit frame sets; 0 when
	// nothing is committed.
	DBPages uint32
	// End says why the valid frames end where they do: nil when the file
	// ends exactly after them (or the callback stopped the walk, see
	// Stopped); else an error wrapping ErrTornFrame, ErrForeignSalts,
	// ErrZeroPage or ErrChecksum. SQLite ignores everything from EndOffset.
	End       error
	EndOffset int64
	// Stopped: the callback ended the walk early; Frames counts the
	// frames it saw.
	Stopped bool
}

// Walk reads the log in r as SQLite's recovery does (conditions 1-10):
// the header, then each frame while it is whole and its salts, page
// number and cumulative checksum hold. fn, when not nil, sees each valid
// frame with its page (a buffer Walk reuses: copy what you keep) and
// returns false to stop.
//
// A header SQLite would ignore or refuse (conditions 1-5) is an error
// wrapping ErrShortHeader, ErrBadMagic, ErrPageSize, ErrHeaderChecksum or
// ErrVersion; an error reading r is returned as is. What ends the frames
// is not an error of Walk: it is Scan.End. Walk does not panic or loop on
// any input; it reads each byte of r at most once.
func Walk(r io.ReaderAt, fn func(f Frame, page []byte) bool) (Scan, error) {
	hb := make([]byte, HeaderSize)
	n, err := r.ReadAt(hb, 0)
	if n < HeaderSize {
		if err != nil && !errors.Is(err, io.EOF) {
			return Scan{}, fmt.Errorf("sqlitewal: read header: %w", err)
		}
		return Scan{}, fmt.Errorf("sqlitewal: %d bytes: %w", n, ErrShortHeader)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return Scan{Header: h}, err
	}
	s := Scan{Header: h}
	ord, be := order(h.BigEndian), binary.BigEndian
	s1, s2 := h.Sum1, h.Sum2
	frame := make([]byte, FrameSize(h.PageSize))
	for off := int64(HeaderSize); ; off += int64(len(frame)) {
		s.EndOffset = off
		n, err := r.ReadAt(frame, off)
		if n < len(frame) {
			switch {
			case err != nil && !errors.Is(err, io.EOF):
				return s, fmt.Errorf("sqlitewal: read frame at %d: %w", off, err)
			case n > 0:
				s.End = fmt.Errorf("sqlitewal: frame %d at %d has %d of %d bytes: %w", s.Frames+1, off, n, len(frame), ErrTornFrame)
			}
			return s, nil
		}
		fh, page := frame[:FrameHeaderSize], frame[FrameHeaderSize:]
		f := Frame{Index: s.Frames + 1, Offset: off, Page: be.Uint32(fh[0:]), Commit: be.Uint32(fh[4:])}
		if be.Uint32(fh[8:]) != h.Salt1 || be.Uint32(fh[12:]) != h.Salt2 {
			s.End = fmt.Errorf("sqlitewal: frame %d at %d has salts %08x %08x, the header %08x %08x: %w",
				f.Index, off, be.Uint32(fh[8:]), be.Uint32(fh[12:]), h.Salt1, h.Salt2, ErrForeignSalts)
			return s, nil
		}
		if f.Page == 0 {
			s.End = fmt.Errorf("sqlitewal: frame %d at %d: %w", f.Index, off, ErrZeroPage)
			return s, nil
		}
		c1, c2 := checksum(ord, fh[:8], s1, s2)
		c1, c2 = checksum(ord, page, c1, c2)
		if c1 != be.Uint32(fh[16:]) || c2 != be.Uint32(fh[20:]) {
			s.End = fmt.Errorf("sqlitewal: frame %d at %d (page %d): %w", f.Index, off, f.Page, ErrChecksum)
			return s, nil
		}
		s1, s2 = c1, c2
		s.Frames++
		if f.Commit != 0 {
			s.Committed, s.DBPages = s.Frames, f.Commit
		}
		if fn != nil && !fn(f, page) {
			s.Stopped = true
			s.EndOffset = off + int64(len(frame))
			return s, nil
		}
	}
}

// Expect is what a caller knows of a log it wrote; zero fields are not
// checked.
type Expect struct {
	PageSize int        // the database's page size
	Salts    *[2]uint32 // the salts it wrote
	Frames   int        // the frames it wrote
	DBPages  uint32     // the database size it committed
}

// Validate checks that r holds a whole log by every condition of wal.go
// (1-14): valid to its last byte, ending in a commit frame, no frame past
// its transaction's database size, and what e names. It returns what Walk
// found and the first condition broken, as an error wrapping one of the
// package's sentinels (ErrOtherPageSize, ErrForeignSalts, ErrTornFrame,
// ErrChecksum, ErrNoCommit, ...) or an error reading r.
func Validate(r io.ReaderAt, e Expect) (Scan, error) {
	var beyond error
	var maxPage uint32 // highest page of the transaction being read
	s, err := Walk(r, func(f Frame, _ []byte) bool {
		maxPage = max(maxPage, f.Page)
		if f.Commit != 0 {
			if maxPage > f.Commit && beyond == nil {
				beyond = fmt.Errorf("sqlitewal: transaction ending at frame %d writes page %d of a %d-page database: %w", f.Index, maxPage, f.Commit, ErrPageBeyondEnd)
			}
			maxPage = 0
		}
		return true
	})
	switch {
	case err != nil:
		return s, err
	case e.PageSize != 0 && s.Header.PageSize != e.PageSize:
		return s, fmt.Errorf("sqlitewal: page size %d, the database's %d: %w", s.Header.PageSize, e.PageSize, ErrOtherPageSize)
	case e.Salts != nil && (s.Header.Salt1 != e.Salts[0] || s.Header.Salt2 != e.Salts[1]):
		return s, fmt.Errorf("sqlitewal: header salts %08x %08x, expected %08x %08x: %w", s.Header.Salt1, s.Header.Salt2, e.Salts[0], e.Salts[1], ErrForeignSalts)
	case s.End != nil:
		return s, s.End
	case s.Frames == 0:
		return s, fmt.Errorf("sqlitewal: no frame: %w", ErrNoCommit)
	case s.Committed < s.Frames:
		return s, fmt.Errorf("sqlitewal: %d frames after the last commit (frame %d): %w", s.Frames-s.Committed, s.Committed, ErrNoCommit)
	case beyond != nil:
		return s, beyond
	case e.Frames != 0 && s.Frames != e.Frames:
		return s, fmt.Errorf("sqlitewal: %d frames, expected %d: %w", s.Frames, e.Frames, ErrUnexpected)
	case e.DBPages != 0 && s.DBPages != e.DBPages:
		return s, fmt.Errorf("sqlitewal: commits %d pages, expected %d: %w", s.DBPages, e.DBPages, ErrUnexpected)
	}
	return s, nil
}
