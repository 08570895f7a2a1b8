package lease

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// A lease in the volume's lease directory is 0600: only its owner (and
// root) may read where its holder's endpoint is. Another user must still
// be able to tell that its holder is gone, or one lease left by an app
// killed with SIGKILL (or a file planted by anyone) would keep a shared
// volume "not safe to remove" for every other user for ever: nothing
// they can do reads it, and the sticky directory keeps them from removing
// it. So the part of a lease that proves its holder alive or dead, and
// is no secret, is in the file's NAME as well as in the file:
//
//	<16 hex: hash of the db path>-<pid>-<start>-<8 hex: hash of host and boot id>.json
//
// The pid and start time are public on the host (/proc), and host and
// boot only enter as a hash. A readable lease whose name says another
// holder than its content is invalid. An unreadable one is judged by its
// name, as Stale judges a lease: another host or boot, a pid that does
// not run, runs another process or has exited means stale; a pid that
// runs must belong to the file's owner (where the platform tells), or the
// file is invalid (a name copied from someone else's process). An
// unreadable file in the lease directory whose name carries no holder was
// not written by ejectsafe (older versions wrote readable leases) and is
// invalid.
//
// A lease beside its database (<db>.ejectsafe-lease) keeps its name: the
// database is in it, so an unreadable one is proven to hold nothing when
// the database's OS lock (<db>.ejectsafe-lock, which a Store holds for as
// long as it has the database open) is free.

// leaseFileName is the name of the lease of db (relative to its volume
// root) held by me in the volume's lease directory.
func leaseFileName(db string, me Self) string {
	sum := sha256.Sum256([]byte(db))
	return fmt.Sprintf("%s-%d-%d-%s%s", hex.EncodeToString(sum[:8]), me.PID, me.Start, hostBoot(me.Host, me.Boot), fileExt)
}

// hostBoot is the hash of a host name and boot id a lease file name carries.
func hostBoot(host, boot string) string {
	sum := sha256.Sum256([]byte(host + "\x00" + boot))
	return hex.EncodeToString(sum[:4])
}

var leaseNameRe = regexp.MustCompile(`^[0-9a-f]{16}-([0-9]{1,7})-([0-9]{1,20})-([0-9a-f]{8})\.json$`)

// nameHolder is the holder a lease file's name carries; ok is false for a
// name that carries none (a fallback lease, or a file not ejectsafe's).
type nameHolder struct {
	PID      int
	Start    uint64
	HostBoot string
}

func parseLeaseName(file string) (nameHolder, bool) {
	m := leaseNameRe.FindStringSubmatch(filepath.Base(file))
	if m == nil {
		return nameHolder{}, false
	}
	pid, err1 := strconv.Atoi(m[1])
	start, err2 := strconv.ParseUint(m[2], 10, 64)
	if err1 != nil || err2 != nil || pid < 1 || pid > 1<<22 {
		return nameHolder{}, false
	}
	return nameHolder{PID: pid, Start: start, HostBoot: m[3]}, true
}

// matches reports whether the lease l is the one its file name says.
func (n nameHolder) matches(l Lease) bool {
	return n.PID == l.PID && n.Start == l.Start && n.HostBoot == hostBoot(l.Host, l.Boot)
}

// stale judges the holder a name carries, as Lease.Stale judges a lease.
func (n nameHolder) stale() (bool, string) {
	me, err := Me()
	if err != nil {
		return false, ""
	}
	if n.HostBoot != hostBoot(me.Host, me.Boot) {
		return true, "held on another host or before this host's last boot"
	}
	start, err := startTime(n.PID)
	switch {
	case err != nil:
		return true, fmt.Sprintf("process %d is not running", n.PID)
	case start != n.Start:
		return true, fmt.Sprintf("process %d is another process now (pid reused)", n.PID)
	case exited(n.PID):
		return true, fmt.Sprintf("process %d has exited (a zombie its parent has not reaped)", n.PID)
	}
	return false, ""
}

// judgeUnreadable fills f for a lease file this user may not read
// (another user's, 0600), without reading it: see the comment above.
func judgeUnreadable(f *Found) {
	f.Unreadable = true
	if strings.HasSuffix(f.File, FallbackSuffix) {
		db := strings.TrimSuffix(f.File, FallbackSuffix)
		if free, err := LockFree(db); err == nil && free {
			f.Stale, f.Why = true, "its database's lock is free: nobody on this host holds it"
		}
		return
	}
	n, ok := parseLeaseName(f.File)
	if !ok {
		f.Err = fmt.Errorf("%w: unreadable, and its name does not say which holder it is", ErrInvalid)
		return
	}
	if f.Stale, f.Why = n.stale(); f.Stale {
		return
	}
	if pu, ok := processOwner(n.PID); ok && f.Owner >= 0 && pu != f.Owner {
		f.Err = fmt.Errorf("%w: its name names process %d, which is not its owner's (uid %d)", ErrInvalid, n.PID, f.Owner)
	}
}

// fileOwner is the uid owning file, or -1 where unknown.
func fileOwner(file string) int {
	fi, err := os.Lstat(file)
	if err != nil {
		return -1
	}
	return ownerOf(fi)
}

// checkName refuses a readable lease in the lease directory whose name
// says another holder than its content.
func checkName(f *Found) {
	if strings.HasSuffix(f.File, FallbackSuffix) {
		return
	}
	if n, ok := parseLeaseName(f.File); ok && !n.matches(f.Lease) {
		f.Lease, f.Err = Lease{}, fmt.Errorf("%w: its file name names another holder than its content", ErrInvalid)
	}
}

func isPermission(err error) bool { return errors.Is(err, fs.ErrPermission) }
