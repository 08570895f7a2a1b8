package journal

import (
	"strconv"
	"strings"

	"github.com/ejectsafe/ejectsafe/layout"
)

// File names, from the table in package layout. Neither ends in
// "-journal", "-wal" or "-shm" (in any case, as FAT and exFAT ignore case):
// SQLite, its tools and our VFS shim treat names with those suffixes as
// SQLite's own companion files of a database.
const (
	// JournalSuffix follows the database path in the journal's name.
	JournalSuffix = layout.JournalSuffix
	// TempInfix follows the database path in a temporary copy's name,
	// before the generation in decimal.
	TempInfix = layout.CopyInfix
)

// Name returns the path of the checkpoint journal of the database at
// dbPath: dbPath + JournalSuffix.
func Name(dbPath string) string { return dbPath + JournalSuffix }

// TempName returns the path of the temporary copy that checkpoint gen of
// the database at dbPath writes: dbPath + ".ejectsafe-tmp-" + gen in
// decimal. It is in the database's directory, so renaming it over the
// database never crosses filesystems.
func TempName(dbPath string, gen uint64) string {
	return dbPath + TempInfix + strconv.FormatUint(gen, 10)
}

// ParseTempName reports whether name is TempName(dbPath, gen) for some
// gen, and which. Pass both as paths, or both as base names (as from a
// directory listing). Only the exact form TempName produces matches: no
// sign, no leading zeros.
func ParseTempName(dbPath, name string) (gen uint64, ok bool) {
	s, ok := strings.CutPrefix(name, dbPath+TempInfix)
	if !ok || s == "" || (s[0] == '0' && len(s) > 1) || s[0] == '+' {
		return 0, false
	}
	gen, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return gen, true
}
