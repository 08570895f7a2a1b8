package sqlitewal

import "errors"

// Errors of this package, by the validity condition (wal.go) they break.
// Each is wrapped with context; test with errors.Is.
var (
	// ErrShortHeader: the file is shorter than the 32-byte header
	// (condition 1). SQLite ignores the file.
	ErrShortHeader = errors.New("sqlitewal: shorter than the WAL header")

	// ErrBadMagic: the header's magic is neither 0x377f0682 nor
	// 0x377f0683 (condition 2). SQLite ignores the file.
	ErrBadMagic = errors.New("sqlitewal: not an SQLite WAL (magic)")

	// ErrPageSize: a page size SQLite's WAL cannot have (condition 3):
	// in a header, SQLite ignores the file; given to Write, nothing is
	// written.
	ErrPageSize = errors.New("sqlitewal: invalid page size")

	// ErrHeaderChecksum: the header's checksum does not match its bytes
	// (condition 4). SQLite ignores the file.
	ErrHeaderChecksum = errors.New("sqlitewal: header checksum mismatch")

	// ErrVersion: a well-formed header of another format version
	// (condition 5). Unlike the errors above, SQLite does not ignore such
	// a file: it refuses to open the database (SQLITE_CANTOPEN).
	ErrVersion = errors.New("sqlitewal: unsupported WAL format version")

	// ErrTornFrame: the file ends inside a frame (condition 6 or 11): a
	// write that did not complete.
	ErrTornFrame = errors.New("sqlitewal: torn frame at the end")

	// ErrForeignSalts: a frame's salts differ from the header's
	// (condition 7), or the header's differ from those expected
	// (condition 14): frames or a log of another generation.
	ErrForeignSalts = errors.New("sqlitewal: salts of another log")

	// ErrZeroPage: a frame names page 0 (condition 8).
	ErrZeroPage = errors.New("sqlitewal: frame for page 0")

	// ErrChecksum: a frame's cumulative checksum does not match
	// (condition 9): damaged bytes.
	ErrChecksum = errors.New("sqlitewal: frame checksum mismatch")

	// ErrNoCommit: the log's last frames are not followed by a commit
	// frame (condition 12); SQLite ignores them.
	ErrNoCommit = errors.New("sqlitewal: frames after the last commit")

	// ErrPageBeyondEnd: a frame's page number is past the database size
	// its transaction commits (condition 13); given to Write, nothing is
	// written.
	ErrPageBeyondEnd = errors.New("sqlitewal: page beyond the committed database size")

	// ErrOtherPageSize: the log's page size is not the expected one
	// (condition 14): it belongs to another database.
	ErrOtherPageSize = errors.New("sqlitewal: page size of another database")

	// ErrUnexpected: a log valid by conditions 1-13 whose frame count or
	// final database size is not what the caller expected (condition 14).
	ErrUnexpected = errors.New("sqlitewal: not the expected log")

	// ErrPageData: Write was given a page whose length is not the page
	// size.
	ErrPageData = errors.New("sqlitewal: page data is not one page")

	// ErrDuplicatePage: Write was given the same page number twice.
	ErrDuplicatePage = errors.New("sqlitewal: page given twice")

	// ErrPageOrder: Writer.Add was given a page below the one before
	// (Write sorts its pages itself).
	ErrPageOrder = errors.New("sqlitewal: pages out of order")

	// ErrCommitted: a Writer was used after its Commit.
	ErrCommitted = errors.New("sqlitewal: log already committed")

	// ErrNoPages: Write was given no page; a transaction needs at least
	// its commit frame.
	ErrNoPages = errors.New("sqlitewal: no pages")
)
