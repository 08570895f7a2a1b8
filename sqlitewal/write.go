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
		switch {
		case p.No == 0:
			return Header{}, fmt.Errorf("sqlitewal: write: %w", ErrZeroPage)
		case p.No > o.DBPages:
			return Header{}, fmt.Errorf("sqlitewal: write: page %d of a %d-page database: %w", p.No, o.DBPages, ErrPageBeyondEnd)
		case len(p.Data) != o.PageSize:
			return Header{}, fmt.Errorf("sqlitewal: write: page %d has %d bytes, not %d: %w", p.No, len(p.Data), o.PageSize, ErrPageData)
		case i > 0 && sorted[i-1].No == p.No:
			return Header{}, fmt.Errorf("sqlitewal: write: page %d: %w", p.No, ErrDuplicatePage)
		}
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
			return Header{}, err
		}
		if h.Salt2, err = randomUint32(); err != nil {
			return Header{}, err
		}
	}
	hb, s1, s2 := h.encode()
	h.Sum1, h.Sum2 = s1, s2
	if _, err := w.Write(hb[:]); err != nil {
		return Header{}, fmt.Errorf("sqlitewal: write header: %w", err)
	}
	ord, be := order(h.BigEndian), binary.BigEndian
	frame := make([]byte, FrameSize(o.PageSize))
	for i, p := range sorted {
		fh := frame[:FrameHeaderSize]
		be.PutUint32(fh[0:], p.No)
		commit := uint32(0)
		if i == len(sorted)-1 {
			commit = o.DBPages
		}
		be.PutUint32(fh[4:], commit)
		be.PutUint32(fh[8:], h.Salt1)
		be.PutUint32(fh[12:], h.Salt2)
		copy(frame[FrameHeaderSize:], p.Data)
		s1, s2 = checksum(ord, fh[:8], s1, s2)
		s1, s2 = checksum(ord, p.Data, s1, s2)
		be.PutUint32(fh[16:], s1)
		be.PutUint32(fh[20:], s2)
		if _, err := w.Write(frame); err != nil {
			return Header{}, fmt.Errorf("sqlitewal: write frame %d (page %d): %w", i+1, p.No, err)
		}
	}
	return h, nil
}
