package journal

import "errors"

// Decode returns only these errors, possibly wrapped with context; test
// them with errors.Is. Header errors (the first five) mean nothing in the
// journal can be trusted and Decode returns a zero Journal with them.
// ErrRecord comes with the records that precede the bad one.
//
// A torn tail is not an error: see Journal.Torn.
var (
	// ErrShortHeader means the input is shorter than the header
	// (conditions H1 and H4): an empty file, or a journal whose creation
	// was cut short. If the journal is created durably (written and
	// fsynced under a temporary name, then renamed), it means the file was
	// damaged.
	ErrShortHeader = errors.New("journal: shorter than the header")

	// ErrBadMagic means the file does not start with Magic (condition H2):
	// it is not a checkpoint journal.
	ErrBadMagic = errors.New("journal: bad magic")

	// ErrVersion means the header names a format version this package does
	// not read (condition H3), most likely written by a newer ejectsafe.
	// Do not overwrite such a journal: it may describe a checkpoint in
	// flight. (Version 1, older, was never released: see the package
	// documentation.)
	ErrVersion = errors.New("journal: unsupported format version")

	// ErrHeaderChecksum means the header's CRC-32C does not match its
	// fields, or its padding is not zero (condition H5): the header was
	// damaged on the drive.
	ErrHeaderChecksum = errors.New("journal: header checksum mismatch")

	// ErrHeader means the header's checksum and padding are good but a
	// field is invalid (condition H6): a broken writer, not damage on the
	// drive.
	ErrHeader = errors.New("journal: invalid header")

	// ErrRecord means a record frame passed its checksum, file id and
	// padding checks (conditions F1-F4) but its contents (conditions R1-R5) or its place in the sequence
	// (conditions O1-O4) are invalid. Torn writes and garbage sectors
	// cannot produce this in practice; a broken writer can. Record.Validate
	// and Journal.Check report the same error before a record is written.
	ErrRecord = errors.New("journal: invalid record")
)
