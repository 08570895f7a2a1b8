package sqlitewal

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Page is one database page: its number (1-based) and its final bytes.
type Page struct {
	No   uint32
	Data []byte
}

// ChecksumOrder chooses the magic, and with it the byte order of the
// checksum words.
type ChecksumOrder int

const (
	// NativeOrder (the zero value) is the host's byte order: what SQLite
	// on this host writes.
	NativeOrder ChecksumOrder = iota
	// LittleEndian writes magic 0x377f0682.
	LittleEndian
	// BigEndian writes magic 0x377f0683.
	BigEndian
)

// WriteOptions describe the log Write produces.
type WriteOptions struct {
	// PageSize is the database's page size; required.
	PageSize int
	// DBPages is the database size in pages once the transaction commits
	// (the commit frame's field): larger than today's to grow it, smaller
	// to shrink it. Required (at least the highest page given).
	DBPages uint32
	// CheckpointSeq goes to header offset 12; SQLite does not check it.
	CheckpointSeq uint32
	// Salts, when not nil, are the header's salts. Nil (the usual case)
	// draws fresh random salts, so that frames of any earlier log at the
	// same path can never pass as this log's (condition 7). A caller that
	// overwrites a log it has read should use NextSalts, as SQLite does.
	Salts *[2]uint32
	// Order is the checksum byte order; the zero value is the host's.
	Order ChecksumOrder
}

// NextSalts returns the salts SQLite gives a log that replaces prev:
// salt-1 one more than prev's, salt-2 random.
func NextSalts(prev Header) (*[2]uint32, error) {
	r, err := randomUint32()
	if err != nil {
		return nil, err
	}
	return &[2]uint32{prev.Salt1 + 1, r}, nil
}

func randomUint32() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("sqlitewal: salt: %w", err)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

func hostBigEndian() bool { return binary.NativeEndian.Uint16([]byte{0, 1}) == 1 }

// Write writes to w a complete WAL holding one transaction: the header,
// then one frame per page in ascending page order, the last a commit
// frame carrying o.DBPages. SQLite's recovery replays it to a database
// whose pages are the given ones over the old file, cut or extended to
// o.DBPages pages (pages past the old end that are not given read as
// zeros). Pages are checked before anything is written: a page number of
// 0 or past o.DBPages, a page twice, data not of o.PageSize bytes, or no
// page at all is an error and writes nothing. pages is not modified.
//
// It returns the header written. Write does not sync: the caller fsyncs
// the file (and its directory, when it created it) before relying on it.
// Writer writes the same bytes one page at a time.
func Write(w io.Writer, pages []Page, o WriteOptions) (Header, error) {
	if !ValidPageSize(o.PageSize) {
		return Header{}, fmt.Errorf("sqlitewal: write: page size %d: %w", o.PageSize, ErrPageSize)
	}
	if len(pages) == 0 {
		return Header{}, fmt.Errorf("sqlitewal: write: %w", ErrNoPages)
	}
	sorted := slices.Clone(pages)
	slices.SortFunc(sorted, func(a, b Page) int { return cmp.Compare(a.No, b.No) })
	for i, p := range sorted {
		if err := checkPage(p, o); err != nil {
			return Header{}, err
		}
		if i > 0 && sorted[i-1].No == p.No {
			return Header{}, fmt.Errorf("sqlitewal: write: page %d: %w", p.No, ErrDuplicatePage)
		}
	}
	wr, err := NewWriter(w, o)
	if err != nil {
		return Header{}, err
	}
	for _, p := range sorted {
		if err := wr.Add(p.No, p.Data); err != nil {
			return Header{}, err
		}
	}
	if err := wr.Commit(); err != nil {
		return Header{}, err
	}
	return wr.Header(), nil
}

// checkPage checks one page against the options (condition 13 and the
// page's length).
func checkPage(p Page, o WriteOptions) error {
	switch {
	case p.No == 0:
		return fmt.Errorf("sqlitewal: write: %w", ErrZeroPage)
	case p.No > o.DBPages:
		return fmt.Errorf("sqlitewal: write: page %d of a %d-page database: %w", p.No, o.DBPages, ErrPageBeyondEnd)
	case len(p.Data) != o.PageSize:
		return fmt.Errorf("sqlitewal: write: page %d has %d bytes, not %d: %w", p.No, len(p.Data), o.PageSize, ErrPageData)
	}
	return nil
}

// Writer writes a one-transaction WAL page by page, for a caller that
// does not hold every page at once (a checkpoint reading them from its
// WAL): NewWriter writes the header, Add each page in ascending page
// order, Commit the last frame. It holds one page back, the one that
// becomes the commit frame, so it keeps a single frame of memory. After
// an error the Writer is done: what was written is not a valid log (no
// commit frame), and the caller discards the file.
type Writer struct {
	w       io.Writer
	o       WriteOptions
	h       Header
	s1, s2  uint32
	frame   []byte // the page held back, framed but for its commit field and checksum
	pending bool
	last    uint32 // the last page number added
	frames  int
	err     error
}

// NewWriter checks o, draws the salts and writes the header to w.
func NewWriter(w io.Writer, o WriteOptions) (*Writer, error) {
	if !ValidPageSize(o.PageSize) {
		return nil, fmt.Errorf("sqlitewal: write: page size %d: %w", o.PageSize, ErrPageSize)
	}
	h := Header{Version: Version, PageSize: o.PageSize, CheckpointSeq: o.CheckpointSeq}
	switch o.Order {
	case NativeOrder:
		h.BigEndian = hostBigEndian()
	case BigEndian:
		h.BigEndian = true
	}
	if o.Salts != nil {
		h.Salt1, h.Salt2 = o.Salts[0], o.Salts[1]
	} else {
		var err error
		if h.Salt1, err = randomUint32(); err != nil {
			return nil, err
		}
		if h.Salt2, err = randomUint32(); err != nil {
			return nil, err
		}
	}
	hb, s1, s2 := h.encode()
	h.Sum1, h.Sum2 = s1, s2
	if _, err := w.Write(hb[:]); err != nil {
		return nil, fmt.Errorf("sqlitewal: write header: %w", err)
	}
	return &Writer{w: w, o: o, h: h, s1: s1, s2: s2, frame: make([]byte, FrameSize(o.PageSize))}, nil
}

// Header is the header the Writer wrote.
func (wr *Writer) Header() Header { return wr.h }

// Frames is the number of frames written or held so far.
func (wr *Writer) Frames() int { return wr.frames }

// Add adds page no with its final bytes (copied: data may be reused once
// Add returns). Pages must come in strictly ascending order, each within
// the options' DBPages and of its page size.
func (wr *Writer) Add(no uint32, data []byte) error {
	if wr.err != nil {
		return wr.err
	}
	if err := checkPage(Page{No: no, Data: data}, wr.o); err != nil {
		wr.err = err
		return err
	}
	if wr.pending && no <= wr.last {
		wr.err = fmt.Errorf("sqlitewal: write: page %d after page %d: %w", no, wr.last, ErrDuplicatePage)
		if no < wr.last {
			wr.err = fmt.Errorf("sqlitewal: write: page %d after page %d: %w", no, wr.last, ErrPageOrder)
		}
		return wr.err
	}
	if wr.pending {
		if err := wr.flush(0); err != nil {
			return err
		}
	}
	be := binary.BigEndian
	be.PutUint32(wr.frame[0:], no)
	be.PutUint32(wr.frame[8:], wr.h.Salt1)
	be.PutUint32(wr.frame[12:], wr.h.Salt2)
	copy(wr.frame[FrameHeaderSize:], data)
	wr.pending, wr.last = true, no
	wr.frames++
	return nil
}

// Commit writes the page held back as the commit frame, carrying the
// options' DBPages. At least one page must have been added.
func (wr *Writer) Commit() error {
	if wr.err != nil {
		return wr.err
	}
	if !wr.pending {
		wr.err = fmt.Errorf("sqlitewal: write: %w", ErrNoPages)
		return wr.err
	}
	if err := wr.flush(wr.o.DBPages); err != nil {
		return err
	}
	wr.err = errCommitted
	return nil
}

// errCommitted is what a Writer answers after Commit.
var errCommitted = fmt.Errorf("sqlitewal: write: %w", ErrCommitted)

// flush writes the frame held back with commit in its commit field.
func (wr *Writer) flush(commit uint32) error {
	be, ord := binary.BigEndian, order(wr.h.BigEndian)
	be.PutUint32(wr.frame[4:], commit)
	wr.s1, wr.s2 = checksum(ord, wr.frame[:8], wr.s1, wr.s2)
	wr.s1, wr.s2 = checksum(ord, wr.frame[FrameHeaderSize:], wr.s1, wr.s2)
	be.PutUint32(wr.frame[16:], wr.s1)
	be.PutUint32(wr.frame[20:], wr.s2)
	wr.pending = false
	if _, err := wr.w.Write(wr.frame); err != nil {
		wr.err = fmt.Errorf("sqlitewal: write frame for page %d: %w", be.Uint32(wr.frame[0:]), err)
		return wr.err
	}
	return nil
}
