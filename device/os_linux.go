package device

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procLocks is the kernel's table of file locks, one per line:
//
//	1: FLOCK  ADVISORY  WRITE 12345 00:2f:1234567 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 23456 00:2f:1234567 0 EOF
//
// Fields: id, class, advisory/mandatory, access, pid, major:minor:inode
// (major and minor in hex, inode in decimal), start, end. A "->" after
// the id marks a waiter, not a holder.
const procLocks = "/proc/locks"

// lockHolder returns the pid of the process holding a flock on the file
// f refers to, or 0 when it cannot tell (no /proc, the holder is in a
// pid namespace this process cannot see, or the lock went away).
func lockHolder(f *os.File) int {
	var st unix.Stat_t
	if err := control(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return 0
	}
	pl, err := os.Open(procLocks)
	if err != nil {
		return 0
	}
	defer pl.Close()
	return parseProcLocks(pl, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
}

// parseProcLocks returns the pid of the first FLOCK holder (not waiter)
// of the inode major:minor:ino in a /proc/locks listing, or 0. Lines it
// cannot parse are skipped: the table is informational, and a wrong
// guess would be worse than no pid.
func parseProcLocks(r io.Reader, major, minor uint32, ino uint64) int {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Waiters have "->" in fields[1]; POSIX, OFDLCK and LEASE
		// entries are not ours to report.
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		if !sameInode(fields[5], major, minor, ino) {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		return pid
	}
	return 0
}

// sameInode reports whether a /proc/locks "maj:min:ino" field (hex, hex,
// decimal) names major:minor:ino.
func sameInode(field string, major, minor uint32, ino uint64) bool {
	parts := strings.Split(field, ":")
	if len(parts) != 3 {
		return false
	}
	maj, err1 := strconv.ParseUint(parts[0], 16, 32)
	mnr, err2 := strconv.ParseUint(parts[1], 16, 32)
	in, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	return uint32(maj) == major && uint32(mnr) == minor && in == ino
}
