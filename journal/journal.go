// Package journal is the on-disk format of the checkpoint journal: encode,
// decode and validate, on byte slices. It does no I/O; package checkpoint
// reads and appends the file through device.FS.
//
// A checkpoint copies the database to TempName(db, gen), applies SQLite's
// checkpoint writes to the copy, fsyncs it, renames it over the database
// and fsyncs the directory. The journal, Name(db), is an append-only file,
// appended into free slots it was created with and never extended,
// whose records say which checkpoint was in flight, so that recovery can
// roll it back or forward, deciding by the checksums the records carry.
//
// # File layout
//
// A journal is a header followed by zero or more record frames, one per
// step of a checkpoint, then zero or more free slots. The header, every
// frame and every free slot fill a slot of their own: SlotSize = 4096
// bytes, at a multiple of 4096 in the file, so frame i starts at
// HeaderSize + i*RecordSize = (i+1)*4096. A slot's fields and their
// checksum are its first BodySize = 64 bytes; the other 4032 bytes are
// zero padding. A free slot is all zero: room for a later record.
//
// Why free slots: a journal is created whole, with free slots after its
// records, and records are then written into the free slots in place,
// never past the end of the file. fusefat, the FAT driver for FUSE,
// corrupts a file that is extended after it was reopened; a journal is
// never extended. (A frame starts with its kind, never zero, so no
// record is all zero.)
//
// Why slots: a power cut can tear a whole sector that an unsynced write
// touches, 512 or 4096 bytes on the media ejectsafe meets, destroying the
// bytes in it that were fsynced earlier. Both sizes divide SlotSize, so no
// sector holds bytes of two slots, and an append, which writes whole slots
// after the last one, touches only sectors of the frames it writes: a torn
// append damages those frames and never the header or a record synced
// before it. (Media that tear larger units can still damage earlier
// slots; Decode reports that damage like any other, and recovery copes
// as with any damaged journal.)
//
// Integers are little-endian. Checksums named CRC-32C use the Castagnoli
// polynomial (hash/crc32), as ext4 and iSCSI do.
//
// Header, one slot, HeaderSize = 4096 bytes:
//
//	offset size  field
//	     0    8  magic: "EJSJRNL\x00" (Magic)
//	     8    4  format version: 2 (Version)
//	    12    4  slot size: 4096 (SlotSize)
//	    16    8  file id: random, chosen when the journal is created
//	    24    8  base generation: every record's generation is greater
//	    32   28  reserved, zero
//	    60    4  CRC-32C of bytes 0-59
//	    64 4032  padding, zero
//
// Record frame, one slot, RecordSize = 4096 bytes:
//
//	offset size  field
//	     0    1  kind: 1 Began, 2 Ready, 3 Done, 4 Aborted, 5 Intent
//	     1    7  reserved, zero
//	     8    8  file id: the header's, so that a frame left over from an
//	             earlier journal at the same path is never taken for ours
//	    16    8  generation of the checkpoint
//	    24    8  size in bytes (an int64, never negative)
//	    32    8  checksum (Sum) of those bytes
//	    40   20  reserved, zero
//	    60    4  CRC-32C of bytes 0-59 of the frame
//	    64 4032  padding, zero
//
// What each kind says about checkpoint G (the order in which package
// checkpoint writes and syncs them is its own contract, invariant
// journal-ahead):
//
//   - Began: checkpoint G started from the base database, which is size
//     bytes with checksum sum. The copy TempName(db, G) may exist, partial.
//   - Ready: the copy TempName(db, G) is complete and fsynced: size bytes,
//     checksum sum. The rename may have happened, in part (FAT), or not.
//   - Intent: checkpoint G writes the database in place (package
//     checkpoint's in-place mode): once its redo log, the stock WAL file
//     beside the database, is applied, the database is size bytes with
//     checksum sum. Written before the log; the log may be missing,
//     partial or whole, and the database the base, partly written or
//     the new state.
//   - Done: the checkpoint is complete (a copy: the rename and the
//     directory fsync; in place: the pages written and fsynced, the log
//     removed); the database is size bytes with checksum sum, equal to
//     G's Ready or Intent record.
//   - Aborted: checkpoint G was abandoned and its copy discarded; the
//     database is the base. Size and sum are zero.
//
// # Versions
//
// Version 2 is the slotted layout above, free slots included (version 2
// was never released either: free slots were added to it in place). Version 1 packed a 64-byte header
// and 64-byte frames, so that a torn append could destroy the header and
// records synced before it. Decode refuses version 1, like any other
// version, with ErrVersion: version 1 was never released, and no version
// 1 journal exists in the field.
//
// # Validity
//
// Header conditions, checked in this order; Decode fails with the error
// named, trusting nothing:
//
//	H1. The input holds at least BodySize bytes.          ErrShortHeader
//	H2. Bytes 0-7 are Magic.                              ErrBadMagic
//	H3. The version is Version.                           ErrVersion
//	H4. The input holds at least HeaderSize bytes.        ErrShortHeader
//	H5. The header checksum matches bytes 0-59, and       ErrHeaderChecksum
//	    the padding (bytes 64-4095) is zero.
//	H6. The slot size is SlotSize; reserved bytes are 0.  ErrHeader
//
// H3 comes before H4 and H5 because another version may have another
// header size and checksum another layout: a version 1 journal is
// reported as ErrVersion, not as short or damaged.
//
// Frame conditions. A frame that breaks none is "good". The records are
// the good frames from the first slot after the header up to the first
// slot that is not one; that slot and everything after it is the tail.
// Recovery acts on the records.
//
//	F1. RecordSize bytes remain in the input.
//	F2. The frame checksum matches bytes 0-59 of the frame.
//	F3. The frame's file id equals the header's.
//	F4. The padding (bytes 64-4095 of the frame) is zero.
//
// Tail conditions. A tail that meets both is free space (Journal.Free
// slots), not damage; otherwise the tail is torn (Journal.Torn) and
// ignored:
//
//	T1. The tail is a whole number of slots (possibly none).
//	T2. Every byte of the tail is zero.
//
// So the slot an interrupted append was writing is, after a pull, still
// zero (not written: free), a good frame (written: a record), or neither
// (torn). A good frame after a free slot breaks T2: the journal is torn,
// and Damaged, as for any good frame after the first bad slot (an append
// of several records whose first slot was not written and a later one
// was, or damage); recovery trusts only the records before it.
//
// The padding is not covered by the checksum but must be zero (H5, F4):
// a slot torn in some sectors and not in the one holding its fields has
// garbage or stale bytes there, and such a slot is damaged, whatever its
// fields say. Requiring zeros detects every damaged padding byte, where a
// checksum would miss one case in 2^32.
//
// Record conditions, checked by Record.Validate on good frames:
//
//	R1. The kind is Began, Ready, Done, Aborted or Intent.
//	R2. Reserved bytes are zero.
//	R3. The generation is at least 1.
//	R4. The size is at most math.MaxInt64.
//	R5. An Aborted record has size 0 and sum 0.
//
// Order conditions, checked by Journal.Check against the record before
// (prev) and the header:
//
//	O1. Began: there is no prev, or prev is Done or Aborted; the
//	    generation is greater than prev's and than the base generation.
//	O2. Ready or Intent: prev is Began of the same generation.
//	O3. Done: prev is Ready or Intent of the same generation, size and
//	    sum.
//	O4. Aborted: prev is Began, Ready or Intent of the same generation.
//
// So a valid journal is a run of finished checkpoints (Began, Ready or
// Intent, Done, or Began, [Ready or Intent,] Aborted) with increasing generations, then at most one
// checkpoint in flight. Whoever resolves a checkpoint in flight (recovery)
// must append its Done or Aborted before the next Began.
//
// A good frame that breaks an R or O condition makes Decode fail with
// ErrRecord, returning the records before it. It is not treated as a torn
// tail: a torn write or a garbage sector passes F2 by chance with
// probability about 2^-32, and must then also carry this journal's file id
// (F3) and zero padding (F4), so such a frame comes from a broken writer,
// and ignoring it silently could make recovery act on a stale state.
//
// # Appending
//
// Create a journal whole (package checkpoint writes it under a temporary
// name, fsyncs it and renames it): the header, the records it starts
// with, then as many free slots as it should have room for. To append
// records, check each with Journal.Check, encode them with AppendRecord
// and write them at offset Journal.Len, a multiple of SlotSize, in one
// write or several, into free slots only: at most Journal.Free records,
// so the file never grows. Write nothing else to the file: the header is
// written only with a new file, and a slot once synced is never written
// again, so no write can tear it. When the free slots run out, or Decode
// reported Torn, create a new journal instead: a frame written after a
// torn one is never read.
package journal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Format constants.
const (
	// Magic starts every journal.
	Magic = "EJSJRNL\x00"
	// Version is the format version this package writes and reads.
	Version = 2
	// SlotSize is the size of the header and of every record frame, and
	// their alignment in the file. It is a multiple of every sector size
	// a torn write is assumed to destroy (512 and 4096 bytes), so no
	// sector holds bytes of two slots.
	SlotSize = 4096
	// BodySize is the size of a slot's fields and checksum, its first
	// bytes; the rest of the slot is zero padding.
	BodySize = 64
	// HeaderSize is the size of the file header: one slot.
	HeaderSize = SlotSize
	// RecordSize is the size of every record frame: one slot. Frame i
	// starts at HeaderSize + i*RecordSize.
	RecordSize = SlotSize
)

// Header field offsets, as in the table above.
const (
	hdrMagic    = 0  // [8]byte, Magic
	hdrVersion  = 8  // uint32, Version
	hdrSlotSize = 12 // uint32, SlotSize
	hdrFileID   = 16 // uint64
	hdrBaseGen  = 24 // uint64
	hdrReserved = 32 // [28]byte, zero
	hdrChecksum = 60 // uint32, CRC-32C of [0, hdrChecksum)
	hdrPadding  = 64 // [SlotSize-BodySize]byte, zero
)

// Record frame field offsets, as in the table above.
const (
	recKind      = 0  // uint8
	recReserved1 = 1  // [7]byte, zero
	recFileID    = 8  // uint64
	recGen       = 16 // uint64
	recSize      = 24 // uint64, at most math.MaxInt64
	recSum       = 32 // uint64
	recReserved2 = 40 // [20]byte, zero
	recChecksum  = 60 // uint32, CRC-32C of [0, recChecksum)
	recPadding   = 64 // [SlotSize-BodySize]byte, zero
)

// zeroSlot is a slot of zeros, never written: padding to append and to
// compare with.
var zeroSlot [SlotSize]byte

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Kind is a record's kind: the step of a checkpoint it records.
type Kind uint8

// Record kinds. The zero Kind is invalid.
const (
	Began   Kind = 1 // checkpoint started; Size and Sum describe the base database
	Ready   Kind = 2 // copy complete and fsynced; Size and Sum describe the copy
	Done    Kind = 3 // renamed and directory fsynced; Size and Sum as in Ready
	Aborted Kind = 4 // abandoned; the database is the base; Size and Sum zero
	Intent  Kind = 5 // in place: Size and Sum describe the database once its redo log is applied
)

// String returns "began", "ready", "done", "aborted" or "intent", or
// "Kind(n)".
func (k Kind) String() string {
	switch k {
	case Began:
		return "began"
	case Ready:
		return "ready"
	case Done:
		return "done"
	case Aborted:
		return "aborted"
	case Intent:
		return "intent"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Header is the decoded file header.
type Header struct {
	// FileID is repeated by every record (condition F3). Choose it at
	// random (NewFileID) whenever a journal file is created, so frames of
	// an earlier journal at the same path never count as records.
	FileID uint64
	// BaseGen is the generation in effect when the journal was created:
	// every record's generation is greater (O1). Zero for a new database;
	// the last generation of the journal being replaced otherwise.
	BaseGen uint64
}

// NewFileID returns a random file id from crypto/rand.
func NewFileID() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return binary.LittleEndian.Uint64(b[:])
}

// Record is one journal record. The meaning of Size and Sum depends on
// Kind; see the package documentation.
type Record struct {
	Kind Kind
	Gen  uint64 // checkpoint generation, at least 1
	Size int64  // bytes, never negative
	Sum  uint64 // checksum (Sum) of those bytes
}

// String formats r for messages and tools: "ready gen=7 size=4096 sum=0x...".
func (r Record) String() string {
	return fmt.Sprintf("%v gen=%d size=%d sum=%#016x", r.Kind, r.Gen, r.Size, r.Sum)
}

// Validate checks conditions R1 and R3-R5 (R2 concerns encoded bytes
// only). The error wraps ErrRecord.
func (r Record) Validate() error {
	if p := r.problem(); p != "" {
		return fmt.Errorf("%w: %v: %s", ErrRecord, r, p)
	}
	return nil
}

// problem returns which of R1 and R3-R5 r breaks, or "".
func (r Record) problem() string {
	switch {
	case r.Kind < Began || r.Kind > Intent:
		return "unknown kind" // R1
	case r.Gen == 0:
		return "generation 0" // R3
	case r.Size < 0:
		return "negative size" // R4
	case r.Kind == Aborted && (r.Size != 0 || r.Sum != 0):
		return "aborted record with a size or sum" // R5
	}
	return ""
}

// Journal is a decoded journal: its header and the records before the
// torn tail, if any.
type Journal struct {
	Header  Header
	Records []Record

	// Len is the length of the decoded prefix of the input: HeaderSize +
	// len(Records)*RecordSize, a multiple of SlotSize. The next record
	// belongs at this offset, the first free slot.
	Len int

	// Free is the number of free slots after the records (T1, T2): room
	// for that many more records, at Len. Zero when Torn.
	Free int

	// Torn reports that the bytes after Len are neither good frames
	// (F1-F4) nor free slots (T1, T2), and were ignored: a short slot, a
	// bad checksum or non-zero padding (a torn or garbage write), a frame
	// of another journal, or a good frame after a free slot. Never append
	// to a torn journal: create a new one.
	Torn bool

	// Damaged reports that, after the first slot that is not a record
	// (a bad frame or a free slot), a later frame is good (F1-F4). An interrupted append damages only the frames it
	// writes, so this means an append of several frames whose first one
	// was torn and a later one landed, damage to earlier data, or appends
	// that were not synced one by one. Recovery still trusts only the
	// prefix, but should then decide by checksums alone and say so.
	Damaged bool
}

// Last returns the last record, if there is one.
func (j Journal) Last() (Record, bool) {
	if len(j.Records) == 0 {
		return Record{}, false
	}
	return j.Records[len(j.Records)-1], true
}

// NextGen returns the generation for the next checkpoint: one more than
// the last record's generation, or than BaseGen if there are no records.
// It returns 0, which no Began accepts, if generations are exhausted.
func (j Journal) NextGen() uint64 {
	g := j.Header.BaseGen
	if r, ok := j.Last(); ok {
		g = r.Gen
	}
	if g == math.MaxUint64 {
		return 0
	}
	return g + 1
}

// Checkpoint gathers the records of one generation.
type Checkpoint struct {
	Gen uint64
	// State is the kind of the generation's last record: Began, Ready or
	// Intent while it is in flight, Done or Aborted once it is resolved.
	State Kind
	// Began is the generation's Began record: the base database.
	Began Record
	// Ready is the generation's Ready record, the fsynced copy, or its
	// Intent record (InPlace), the state its redo log makes; the zero
	// Record if the checkpoint never got that far.
	Ready Record
	// InPlace: the checkpoint writes the database in place (Ready is an
	// Intent record).
	InPlace bool
}

// InFlight reports whether the checkpoint still needs recovery: it began
// and was neither done nor aborted.
func (c Checkpoint) InFlight() bool { return c.State == Began || c.State == Ready || c.State == Intent }

// Latest returns the last checkpoint in the journal, if there is one.
func (j Journal) Latest() (Checkpoint, bool) {
	last, ok := j.Last()
	if !ok {
		return Checkpoint{}, false
	}
	c := Checkpoint{Gen: last.Gen, State: last.Kind}
	// By O1-O4 the generation's records are the last one to three, in
	// the order Began, [Ready], [Done or Aborted].
	for i := len(j.Records) - 1; i >= 0 && j.Records[i].Gen == c.Gen; i-- {
		switch r := j.Records[i]; r.Kind {
		case Began:
			c.Began = r
			return c, true
		case Ready:
			c.Ready = r
		case Intent:
			c.Ready, c.InPlace = r, true
		}
	}
	// Unreachable for a Journal from Decode; a hand-built one may lack
	// its Began, and gets a zero Began.
	return c, true
}

// Check reports whether r may be appended to j: conditions R1, R3-R5 and
// O1-O4. The error wraps ErrRecord.
func (j Journal) Check(r Record) error {
	if p := j.problem(r); p != "" {
		return fmt.Errorf("%w: %v: %s", ErrRecord, r, p)
	}
	return nil
}

// problem returns which of R1, R3-R5 and O1-O4 r breaks as the next
// record of j, or "".
func (j Journal) problem(r Record) string {
	if p := r.problem(); p != "" {
		return p
	}
	prev, ok := j.Last()
	if r.Kind == Began { // O1
		switch {
		case ok && prev.Kind != Done && prev.Kind != Aborted:
			return fmt.Sprintf("follows %v: checkpoint %d was not resolved", prev, prev.Gen)
		case ok && r.Gen <= prev.Gen:
			return fmt.Sprintf("follows %v: generations must increase", prev)
		case r.Gen <= j.Header.BaseGen:
			return fmt.Sprintf("generation not above the base generation %d", j.Header.BaseGen)
		}
		return ""
	}
	if !ok {
		return "first record is not began"
	}
	if r.Gen != prev.Gen {
		return fmt.Sprintf("follows %v: different generation", prev)
	}
	switch r.Kind {
	case Ready, Intent: // O2
		if prev.Kind != Began {
			return fmt.Sprintf("follows %v, not began", prev)
		}
	case Done: // O3
		if prev.Kind != Ready && prev.Kind != Intent {
			return fmt.Sprintf("follows %v, not ready or intent", prev)
		}
		if r.Size != prev.Size || r.Sum != prev.Sum {
			return fmt.Sprintf("follows %v: size or sum differ", prev)
		}
	case Aborted: // O4
		if prev.Kind != Began && prev.Kind != Ready && prev.Kind != Intent {
			return fmt.Sprintf("follows %v, not began, ready or intent", prev)
		}
	}
	return ""
}

// AppendHeader appends the encoded header h, one slot, to dst.
func AppendHeader(dst []byte, h Header) []byte {
	dst, b := appendSlot(dst)
	copy(b[hdrMagic:], Magic)
	binary.LittleEndian.PutUint32(b[hdrVersion:], Version)
	binary.LittleEndian.PutUint32(b[hdrSlotSize:], SlotSize)
	binary.LittleEndian.PutUint64(b[hdrFileID:], h.FileID)
	binary.LittleEndian.PutUint64(b[hdrBaseGen:], h.BaseGen)
	binary.LittleEndian.PutUint32(b[hdrChecksum:], crc32.Checksum(b[:hdrChecksum], castagnoli))
	return dst
}

// appendSlot appends a zero slot to dst and returns the result and the
// new slot's body.
func appendSlot(dst []byte) ([]byte, []byte) {
	n := len(dst)
	dst = append(dst, zeroSlot[:]...)
	return dst, dst[n : n+BodySize]
}

// AppendRecord appends r, encoded as a frame (one slot) of the journal
// with the given file id, to dst. It fails, appending nothing, if
// r.Validate does; it does not check the order conditions (see
// Journal.Check).
func AppendRecord(dst []byte, fileID uint64, r Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return dst, err
	}
	return appendFrame(dst, fileID, r), nil
}

// appendFrame encodes r without validating it.
func appendFrame(dst []byte, fileID uint64, r Record) []byte {
	dst, b := appendSlot(dst)
	b[recKind] = byte(r.Kind)
	binary.LittleEndian.PutUint64(b[recFileID:], fileID)
	binary.LittleEndian.PutUint64(b[recGen:], r.Gen)
	binary.LittleEndian.PutUint64(b[recSize:], uint64(r.Size))
	binary.LittleEndian.PutUint64(b[recSum:], r.Sum)
	binary.LittleEndian.PutUint32(b[recChecksum:], crc32.Checksum(b[:recChecksum], castagnoli))
	return dst
}

// Decode decodes a whole journal file. It never panics and allocates at
// most in proportion to len(b).
//
// The header must be valid (H1-H6); otherwise Decode returns a zero
// Journal and ErrShortHeader, ErrBadMagic, ErrVersion, ErrHeaderChecksum
// or ErrHeader. Records are then decoded frame by frame until the input
// ends or a slot is not a good frame (F1-F4). The tail from there is free
// space (T1, T2: Free counts its slots) or torn (Torn). A good frame that
// breaks R1-R5 or O1-O4 stops decoding with an error wrapping ErrRecord;
// the returned Journal then holds the records before it.
func Decode(b []byte) (Journal, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return Journal{}, err
	}
	j := Journal{Header: h, Len: HeaderSize}
	for off := HeaderSize; off < len(b); off += RecordSize {
		frame, ok := goodFrame(b[off:], h.FileID)
		if !ok {
			if tail := b[off:]; len(tail)%SlotSize == 0 && allZero(tail) { // T1, T2
				j.Free = len(tail) / SlotSize
				break
			}
			j.Torn = true
			for next := off + RecordSize; next < len(b); next += RecordSize {
				if _, ok := goodFrame(b[next:], h.FileID); ok {
					j.Damaged = true
					break
				}
			}
			break
		}
		r := Record{
			Kind: Kind(frame[recKind]),
			Gen:  binary.LittleEndian.Uint64(frame[recGen:]),
			Size: int64(binary.LittleEndian.Uint64(frame[recSize:])),
			Sum:  binary.LittleEndian.Uint64(frame[recSum:]),
		}
		p := ""
		if !allZero(frame[recReserved1:recFileID]) || !allZero(frame[recReserved2:recChecksum]) {
			p = "reserved bytes not zero" // R2
		} else {
			p = j.problem(r)
		}
		if p != "" {
			return j, fmt.Errorf("%w %d at offset %d: %v: %s",
				ErrRecord, len(j.Records), off, r, p)
		}
		j.Records = append(j.Records, r)
		j.Len += RecordSize
	}
	return j, nil
}

// DecodeHeader decodes a journal's header from its first HeaderSize
// bytes, checking H1-H6, without reading any record: the cheap check of
// which journal a file is (its FileID).
func DecodeHeader(b []byte) (Header, error) { return decodeHeader(b) }

// decodeHeader checks H1-H6.
func decodeHeader(b []byte) (Header, error) {
	if len(b) < BodySize { // H1
		return Header{}, fmt.Errorf("%w: %d bytes", ErrShortHeader, len(b))
	}
	if string(b[hdrMagic:hdrMagic+len(Magic)]) != Magic { // H2
		return Header{}, ErrBadMagic
	}
	// H3 before H4 and H5: another version may have another header
	// size, and checksum another layout.
	if v := binary.LittleEndian.Uint32(b[hdrVersion:]); v != Version {
		return Header{}, fmt.Errorf("%w: version %d, this build reads %d", ErrVersion, v, Version)
	}
	if len(b) < HeaderSize { // H4
		return Header{}, fmt.Errorf("%w: %d bytes", ErrShortHeader, len(b))
	}
	b = b[:HeaderSize]
	if binary.LittleEndian.Uint32(b[hdrChecksum:]) != crc32.Checksum(b[:hdrChecksum], castagnoli) { // H5
		return Header{}, ErrHeaderChecksum
	}
	if !allZero(b[hdrPadding:]) { // H5
		return Header{}, fmt.Errorf("%w: padding not zero", ErrHeaderChecksum)
	}
	if n := binary.LittleEndian.Uint32(b[hdrSlotSize:]); n != SlotSize { // H6
		return Header{}, fmt.Errorf("%w: slot size %d, want %d", ErrHeader, n, SlotSize)
	}
	if !allZero(b[hdrReserved:hdrChecksum]) { // H6
		return Header{}, fmt.Errorf("%w: reserved bytes not zero", ErrHeader)
	}
	return Header{
		FileID:  binary.LittleEndian.Uint64(b[hdrFileID:]),
		BaseGen: binary.LittleEndian.Uint64(b[hdrBaseGen:]),
	}, nil
}

// goodFrame returns the frame at the start of b if it meets F1-F4.
func goodFrame(b []byte, fileID uint64) ([]byte, bool) {
	if len(b) < RecordSize { // F1
		return nil, false
	}
	b = b[:RecordSize]
	if binary.LittleEndian.Uint32(b[recChecksum:]) != crc32.Checksum(b[:recChecksum], castagnoli) { // F2
		return nil, false
	}
	if binary.LittleEndian.Uint64(b[recFileID:]) != fileID { // F3
		return nil, false
	}
	if !allZero(b[recPadding:]) { // F4
		return nil, false
	}
	return b, true
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroSlot))
		if !bytes.Equal(b[:n], zeroSlot[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
