// Package mountinfo parses Linux's /proc/self/mountinfo. It is shared by
// package device (the volume serial, FUSE daemons that drop fsync) and
// package probe (what a mount is), and portable so its tests run on every
// platform.
package mountinfo

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Linux's /proc/self/mountinfo has one line per mount in this process's
// mount namespace, parents before children, later mounts over earlier
// ones (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)    (10)        (11)
//
//  1. mount ID
//  2. parent ID
//  3. major:minor of st_dev for files on this filesystem (decimal)
//  4. root: the directory of the filesystem mounted here
//  5. mount point, relative to this process's root
//  6. per-mount options
//  7. zero or more optional fields (shared:N, master:N, ...)
//  8. a single "-"
//  9. filesystem type (type or type.subtype, as in fuse.sshfs)
//  10. mount source, or "none"
//  11. superblock options
//
// Fields 4, 5 and 10 escape space, tab, newline and backslash as octal
// \040, \011, \012 and \134. The parser here is portable so its tests
// run everywhere; only Linux code reads the real file.

// Entry is one parsed mountinfo line.
type Entry struct {
	ID, Parent   int
	Major, Minor uint32
	Root         string
	MountPoint   string
	MountOptions []string
	Optional     []string
	FSType       string
	Source       string
	SuperOptions []string
}

// ReadOnly reports whether the mount or its superblock is read-only.
func (m *Entry) ReadOnly() bool {
	for _, o := range m.MountOptions {
		if o == "ro" {
			return true
		}
	}
	for _, o := range m.SuperOptions {
		if o == "ro" {
			return true
		}
	}
	return false
}

// Options returns the per-mount options followed by the superblock
// options not already among them.
func (m *Entry) Options() []string {
	seen := make(map[string]bool, len(m.MountOptions))
	out := make([]string, 0, len(m.MountOptions)+len(m.SuperOptions))
	for _, o := range m.MountOptions {
		seen[o] = true
		out = append(out, o)
	}
	for _, o := range m.SuperOptions {
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// errLine is what ParseLine returns for a line it
// cannot parse.
var errLine = errors.New("malformed mountinfo line")

// Parse parses a mountinfo listing. Lines it cannot parse are
// counted in skipped, not fatal: one odd line must not hide the mount a
// caller asks about. err is only a read error.
func Parse(r io.Reader) (entries []Entry, skipped int, err error) {
	br := bufio.NewReader(r) // not a Scanner: overlay lines can exceed 64 KiB
	for {
		line, rerr := br.ReadString('\n')
		line = strings.TrimRight(line, "\n")
		if line != "" {
			e, perr := ParseLine(line)
			if perr != nil {
				skipped++
			} else {
				entries = append(entries, e)
			}
		}
		if rerr == io.EOF {
			return entries, skipped, nil
		}
		if rerr != nil {
			return entries, skipped, rerr
		}
	}
}

// ParseLine parses one line; see the field list above.
func ParseLine(line string) (Entry, error) {
	var e Entry
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || len(f) < sep+3 {
		return e, errLine
	}
	var err error
	if e.ID, err = strconv.Atoi(f[0]); err != nil {
		return e, errLine
	}
	if e.Parent, err = strconv.Atoi(f[1]); err != nil {
		return e, errLine
	}
	majStr, minStr, found := strings.Cut(f[2], ":")
	if !found {
		return e, errLine
	}
	maj, err1 := strconv.ParseUint(majStr, 10, 32)
	mnr, err2 := strconv.ParseUint(minStr, 10, 32)
	if err1 != nil || err2 != nil {
		return e, errLine
	}
	e.Major, e.Minor = uint32(maj), uint32(mnr)
	e.Root = unescape(f[3])
	e.MountPoint = unescape(f[4])
	e.MountOptions = splitOptions(f[5])
	if sep > 6 {
		e.Optional = f[6:sep]
	}
	e.FSType = unescape(f[sep+1])
	e.Source = unescape(f[sep+2])
	if len(f) > sep+3 {
		e.SuperOptions = splitOptions(f[sep+3])
	}
	if !strings.HasPrefix(e.MountPoint, "/") {
		return e, errLine
	}
	return e, nil
}

func splitOptions(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(unescape(s), ",")
}

// unescape undoes the kernel's octal escapes (\040 and so on).
// A backslash not followed by three octal digits (at most \377) is
// kept as is.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Find returns the index of the mount holding path (absolute and
// cleaned): the longest mount point that is path or a parent of it. Of
// several mounts on the same point the last wins, as the last one listed
// is on top. It returns -1 when none matches.
func Find(entries []Entry, path string) int {
	best, bestLen := -1, -1
	for i := range entries {
		mp := entries[i].MountPoint
		if !Under(path, mp) {
			continue
		}
		if len(mp) >= bestLen {
			best, bestLen = i, len(mp)
		}
	}
	return best
}

// Under reports whether path (absolute, cleaned) is mp or lies below it.
func Under(path, mp string) bool {
	if mp == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == mp || strings.HasPrefix(path, mp+"/")
}
