// Package sqlitewal reads, checks and writes SQLite's write-ahead log file
// format (the `<db>-wal` file), so that a log ejectsafe writes is replayed
// by SQLite's own recovery, even on a machine without ejectsafe, and a log
// found on a drive is classified before anything trusts it.
//
// It knows the file format only: no locking, no wal-index (-shm), no
// database pages beyond the bytes it is given. Sources: SQLite's
// fileformat2.html ("The Write-Ahead Log") and src/wal.c (walIndexRecover,
// walDecodeFrame, walChecksumBytes), read to understand, not copied.
//
// # Layout
//
// Every integer field is a big-endian uint32, whatever the checksum order.
//
//	WAL header, 32 bytes, at offset 0:
//	  off  field
//	   0   magic: 0x377f0682 (checksum words read little-endian)
//	              or 0x377f0683 (checksum words read big-endian)
//	   4   format version: 3007000, the only one
//	   8   page size: a power of two from 512 to 65536 (65536 as is)
//	  12   checkpoint sequence number
//	  16   salt-1
//	  20   salt-2
//	  24   checksum-1 \ SQLite's checksum (below) of bytes 0..23,
//	  28   checksum-2 / starting from (0, 0)
//
//	frame i (1-based) at offset 32 + (i-1)*(24+pageSize):
//	  frame header, 24 bytes:
//	   0   page number (1-based)
//	   4   commit size: on the last frame of a transaction, the database
//	       size in pages after it commits; 0 on every other frame
//	   8   salt-1 \ copies of the header's salts
//	  12   salt-2 /
//	  16   checksum-1 \ the checksum continued from the previous frame's
//	  20   checksum-2 / (the header's for frame 1) over this frame's
//	                    bytes 0..7 and then its page
//	  24   the page: pageSize bytes
//
// The checksum runs over 8-byte steps: with x and y the two 32-bit words
// of a step (in the order the magic names), s1 += x + s2; s2 += y + s1.
//
// # Validity
//
// As SQLite's recovery decides it (the first failure ends the log):
//
//  1. The file holds at least the 32-byte header; else SQLite ignores it.
//  2. The magic is one of the two above; else SQLite ignores the file.
//  3. The page size is a power of two from 512 to 65536; else SQLite
//     ignores the file.
//  4. The header checksum matches bytes 0..23; else SQLite ignores the
//     file.
//  5. The version is 3007000; else (with 1-4 holding) SQLite fails to
//     open the database (SQLITE_CANTOPEN): a file from a future format.
//  6. Frames are read while a whole frame is there: a partial frame at
//     the end (a torn write) ends the log.
//  7. A frame's salts equal the header's; else the log ends there (frames
//     left from an earlier generation of the file).
//  8. A frame's page number is not 0; else the log ends there.
//  9. A frame's checksum matches; else the log ends there.
//  10. Of the frames that pass 6-9, SQLite uses those up to and including
//     the last commit frame (commit size not 0); later frames are an
//     uncommitted transaction, ignored.
//
// Validate adds ejectsafe's rules for a log it wrote itself (SQLite does
// not check these):
//
//  11. Conditions 1-9 hold for every byte of the file: it ends exactly
//     after the last frame, no frame is torn, foreign or damaged.
//  12. The last frame is a commit frame (10 drops nothing).
//  13. Each frame's page number is at most the commit size of the
//     transaction it belongs to.
//  14. The page size, salts, frame count and final database size are
//     those the caller expects (Expect), where it names them.
//
// # Byte order of the checksums
//
// SQLite writes the magic that names its host's byte order, and reads
// either. Write does the same by default (WriteOptions.ChecksumOrder):
// on every little-endian host (x86-64, arm64) the file is 0x377f0682 with
// little-endian checksum words, byte for byte what that host's SQLite
// would write for the same frames and salts.
package sqlitewal

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Format constants, mirroring the table above.
const (
	HeaderSize      = 32         // bytes of the WAL header
	FrameHeaderSize = 24         // bytes of a frame header, before its page
	Version         = 3007000    // the only WAL format version (condition 5)
	MagicLE         = 0x377f0682 // magic: checksum words little-endian
	MagicBE         = 0x377f0683 // magic: checksum words big-endian
	MinPageSize     = 512
	MaxPageSize     = 65536
)

// Header is a WAL file's 32-byte header, decoded.
type Header struct {
	BigEndian     bool   // magic 0x377f0683: checksum words big-endian
	Version       uint32 // format version
	PageSize      int
	CheckpointSeq uint32
	Salt1, Salt2  uint32
	Sum1, Sum2    uint32 // header checksum as stored
}

// ValidPageSize reports whether ps is a page size SQLite's WAL accepts
// (condition 3).
func ValidPageSize(ps int) bool {
	return ps >= MinPageSize && ps <= MaxPageSize && ps&(ps-1) == 0
}

// DBHeaderPageSize is the page size an SQLite database header names
// (offset 16, big-endian, 1 meaning 65536), or 0 for a header too short
// to hold it. It is not checked: see ValidPageSize.
func DBHeaderPageSize(hdr []byte) int {
	if len(hdr) < 18 {
		return 0
	}
	ps := int(binary.BigEndian.Uint16(hdr[16:]))
	if ps == 1 {
		ps = MaxPageSize
	}
	return ps
}

// FrameSize is the size of one frame for pages of pageSize bytes.
func FrameSize(pageSize int) int { return FrameHeaderSize + pageSize }

// FrameOffset is the offset of frame i (1-based) for pages of pageSize.
func FrameOffset(i int, pageSize int) int64 {
	return HeaderSize + int64(i-1)*int64(FrameSize(pageSize))
}

// FileSize is the size of a WAL of n frames of pages of pageSize bytes.
func FileSize(n int, pageSize int) int64 { return FrameOffset(n+1, pageSize) }

// order is the byte order of the checksum words.
func order(bigEndian bool) binary.ByteOrder {
	if bigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// checksum continues SQLite's WAL checksum (s1, s2) over b; len(b) is a
// multiple of 8 (a header prefix, a frame header prefix or a page).
func checksum(o binary.ByteOrder, b []byte, s1, s2 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s1 += o.Uint32(b[i:]) + s2
		s2 += o.Uint32(b[i+4:]) + s1
	}
	return s1, s2
}

// Checksum continues SQLite's WAL checksum (s1, s2) over b, reading
// words in the order the magic names (bigEndian); len(b) must be a
// multiple of 8 (trailing bytes are not summed).
func Checksum(bigEndian bool, b []byte, s1, s2 uint32) (uint32, uint32) {
	return checksum(order(bigEndian), b, s1, s2)
}

// encode returns the header's 32 bytes with its checksum computed (Sum1
// and Sum2 are ignored), and that checksum.
func (h Header) encode() (b [HeaderSize]byte, s1, s2 uint32) {
	magic := uint32(MagicLE)
	if h.BigEndian {
		magic = MagicBE
	}
	be := binary.BigEndian
	be.PutUint32(b[0:], magic)
	be.PutUint32(b[4:], h.Version)
	be.PutUint32(b[8:], uint32(h.PageSize))
	be.PutUint32(b[12:], h.CheckpointSeq)
	be.PutUint32(b[16:], h.Salt1)
	be.PutUint32(b[20:], h.Salt2)
	s1, s2 = checksum(order(h.BigEndian), b[:24], 0, 0)
	be.PutUint32(b[24:], s1)
	be.PutUint32(b[28:], s2)
	return b, s1, s2
}

// ParseHeader decodes and checks a WAL header (conditions 1-5). On an
// error wrapping ErrVersion the returned Header is filled in (SQLite
// would refuse the database rather than ignore the file); on the other
// errors it is partly filled or zero.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("sqlitewal: %d bytes: %w", len(b), ErrShortHeader)
	}
	be := binary.BigEndian
	magic := be.Uint32(b[0:])
	h := Header{
		BigEndian:     magic == MagicBE,
		Version:       be.Uint32(b[4:]),
		PageSize:      int(be.Uint32(b[8:])),
		CheckpointSeq: be.Uint32(b[12:]),
		Salt1:         be.Uint32(b[16:]),
		Salt2:         be.Uint32(b[20:]),
		Sum1:          be.Uint32(b[24:]),
		Sum2:          be.Uint32(b[28:]),
	}
	if magic != MagicLE && magic != MagicBE {
		return h, fmt.Errorf("sqlitewal: magic %#08x: %w", magic, ErrBadMagic)
	}
	if v := be.Uint32(b[8:]); v > MaxPageSize || !ValidPageSize(int(v)) {
		return h, fmt.Errorf("sqlitewal: page size %d: %w", v, ErrPageSize)
	}
	if s1, s2 := checksum(order(h.BigEndian), b[:24], 0, 0); s1 != h.Sum1 || s2 != h.Sum2 {
		return h, fmt.Errorf("sqlitewal: header checksum %08x%08x, computed %08x%08x: %w", h.Sum1, h.Sum2, s1, s2, ErrHeaderChecksum)
	}
	if h.Version != Version {
		return h, fmt.Errorf("sqlitewal: version %d: %w", h.Version, ErrVersion)
	}
	return h, nil
}

// Retired reports whether a WAL file of size bytes, read through r, is
// empty to SQLite by construction: no bytes at all, or a header of 32
// zero bytes (no magic: SQLite's recovery reads the file as an empty
// WAL, whatever frames follow). That is how an in-place writer retires
// its redo log without removing it, so that the next log reuses the
// file's space (and, on FAT and exFAT, its clusters) instead of creating
// and removing a directory entry per checkpoint. A file shorter than the
// header but not empty is not retired: nothing writes one.
func Retired(r io.ReaderAt, size int64) (bool, error) {
	switch {
	case size == 0:
		return true, nil
	case size < HeaderSize:
		return false, nil
	}
	b := make([]byte, HeaderSize)
	if n, err := r.ReadAt(b, 0); n < HeaderSize {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, err
	}
	return RetiredHeader(b), nil
}

// RetiredHeader reports whether b starts with a retired header: 32 zero
// bytes.
func RetiredHeader(b []byte) bool {
	if len(b) < HeaderSize {
		return false
	}
	for _, c := range b[:HeaderSize] {
		if c != 0 {
			return false
		}
	}
	return true
}
