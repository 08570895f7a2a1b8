package device

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// CanonicalName returns path (absolute, clean, its links already resolved)
// with every component that exists spelled as its directory holds it.
//
// FAT, exFAT and NTFS compare names without regard to case: "case.db"
// opens "Case.db". Every name ejectsafe derives from a database's path
// (its checkpoint copies, journal, lock, lease) must then be derived from
// one spelling, or a copy named after one is left behind by a recovery
// looking for the other, and a volume gets two leases for one database.
// Whether a directory compares names that way is found by asking it, not
// by the filesystem's type (ext4 can fold case per directory; a FUSE
// daemon may or may not): a component found by lstat, whose case-swapped
// name is found too, is looked up in its directory's listing (spelling).
// A component without letters, or in a case-sensitive directory, costs
// one failed lstat; a missing component and what follows are kept as
// given.
func CanonicalName(path string) (string, error) {
	vol := filepath.VolumeName(path)
	rest := path[len(vol):]
	out := vol + string(filepath.Separator)
	parts := strings.Split(strings.Trim(rest, string(filepath.Separator)), string(filepath.Separator))
	for i, c := range parts {
		if c == "" {
			continue
		}
		name := filepath.Join(out, c)
		_, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{out}, parts[i:]...)...), nil
		}
		if err != nil {
			return "", err
		}
		if spelled, ok := spelling(out, c); ok {
			name = filepath.Join(out, spelled)
		}
		out = name
	}
	return out, nil
}

// spelling returns the name dir holds for c when dir found c although it
// holds no entry spelled so: dir compares names without case, and holds
// exactly one entry equal to c but for case. (Inode numbers cannot tell:
// FUSE daemons such as exfat-fuse and fusefat give each name looked up an
// inode number of its own.) The case-swapped lookup comes first so that
// a case-sensitive directory is never listed.
func spelling(dir, c string) (string, bool) {
	swapped := swapCase(c)
	if swapped == c {
		return "", false // no letters to fold
	}
	if _, err := os.Lstat(filepath.Join(dir, swapped)); err != nil {
		return "", false // case-sensitive here
	}
	d, err := openDir(dir)
	if err != nil {
		return "", false
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return "", false
	}
	match, n := "", 0
	for _, name := range names {
		if name == c {
			return "", false // held as given
		}
		if strings.EqualFold(name, c) {
			match, n = name, n+1
		}
	}
	return match, n == 1
}

// swapCase turns upper case letters to lower case and the others to upper.
func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsUpper(r) {
			return unicode.ToLower(r)
		}
		return unicode.ToUpper(r)
	}, s)
}
