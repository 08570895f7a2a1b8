package device

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ejectsafe/ejectsafe/internal/mountinfo"
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

// # FUSE filesystems that drop fsync
//
// fusefat (Debian package fusefat 0.1a; fstype fuse.fusefat) answers
// FSYNC and FSYNCDIR with success but never calls fsync(2) on the block
// device it writes to: its writes sit in the device's page cache, host
// memory, until the kernel writes them back after
// vm.dirty_expire_centisecs (30 s by default). A drive pulled before that
// loses everything written since, fsynced or not; no library on top can
// be durable. Measured by yank/fsync_test.go on loop devices, with
// faultinject/realfs modelling the pull (the device's page cache lost):
//
//	fsync of the file and of its directory, nothing else   lost
//	... plus syncfs(2) on a descriptor inside the mount     lost
//	... plus fsync(2) of the block device (/dev/loopN)      kept
//	... plus sync(2)                                        kept
//
// syncfs does not help because a fuse (not fuseblk) superblock has no
// block device for the kernel to flush, and libfuse 2 has no SYNCFS
// request. fsync of the block device works, but needs its path (the
// mount source fusefat shows in mountinfo is "fusefat", not the device)
// and permission to open it (root or the disk group; a desktop user
// running fusefat on a stick has neither in general). sync(2) works
// unprivileged, so after every successful fsync of a file or directory
// on such a filesystem, File.Sync and SyncDir call sync(2).
//
// What it costs, and what it does not give:
//   - sync(2) is global: it starts writeback of every filesystem and
//     block device on the machine and waits for it. On an idle machine
//     it takes about 0.1 ms; behind another process's gigabytes of dirty
//     data (a large copy to another drive) it waits for those too. A
//     checkpoint makes a handful of fsyncs, so a handful of sync(2)s.
//   - sync(2) returns no error: a write-back error on the device is not
//     reported by it (fusefat's own write errors still are, by write).
//   - Unlike fsync of the block device, sync(2) sends no cache-flush
//     command to the drive: data reaches the drive but may sit in a
//     volatile write cache of the drive itself, if it has one.
//   - It only runs for the filesystems listed in fsyncDroppers; every
//     other filesystem (exfat-fuse included: it fsyncs its device) pays
//     one fstat(2) and a cached lookup per fsync.
//   - It makes fusefat's fsync durable, not fusefat safe: fusefat also
//     loses a file's data when the file is extended through a new handle
//     or after a write at a lower offset (yank/fusefat_test.go).
//
// Detection is by the filesystem type (or, for fuse mounts without a
// subtype, the mount source) in /proc/self/mountinfo of the mount whose
// device number (st_dev) the synced file has. The answer is cached per
// device number, and the cache is dropped whenever the mount table
// changes (poll(2) on /proc/self/mountinfo reports POLLPRI then), since
// anonymous device numbers of FUSE mounts are reused after an unmount.

// fsyncDroppers are the FUSE daemons known to acknowledge fsync without
// making data durable, by the name they mount under.
var fsyncDroppers = []string{"fusefat"}

// selfMountinfo is the mount table the fsync workaround reads.
const selfMountinfo = "/proc/self/mountinfo"

// fsyncFlushes counts the sync(2) calls made by flushFsyncDropped, for
// tests.
var fsyncFlushes atomic.Int64

func init() { afterFsync = flushFsyncDropped }

// flushFsyncDropped runs after a successful fsync of f: when f's
// filesystem drops fsync, it calls sync(2) (see above). An fstat error is
// returned: then whether the fsync meant anything is unknown.
func flushFsyncDropped(f *os.File) error {
	var st unix.Stat_t
	if err := control(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if !dropCache.lookup(st.Dev) {
		return nil
	}
	unix.Sync()
	fsyncFlushes.Add(1)
	return nil
}

// dropCache remembers, per device number, whether the filesystem drops
// fsync.
var dropCache fsyncDropCache

type fsyncDropCache struct {
	mu    sync.Mutex
	watch *os.File        // selfMountinfo held open: poll says when mounts change
	byDev map[uint64]bool // st_dev -> the filesystem drops fsync
}

// lookup reports whether the filesystem with device number dev drops
// fsync, reading the mount table only on a miss or after it changed.
func (c *fsyncDropCache) lookup(dev uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stale() {
		clear(c.byDev)
	}
	if drops, ok := c.byDev[dev]; ok {
		return drops
	}
	f, err := os.Open(selfMountinfo)
	if err != nil {
		return false // no /proc: nothing known to drop fsync
	}
	drops, err := devDropsFsync(f, dev)
	f.Close()
	if err != nil {
		return drops // a read error: do not cache a partial answer
	}
	if c.byDev == nil {
		c.byDev = make(map[uint64]bool)
	}
	c.byDev[dev] = drops
	return drops
}

// stale reports whether the mount table may have changed since the cache
// was filled. Opening mountinfo records the table's current event count;
// poll(2) reports POLLPRI once the count moves (proc(5)). Without /proc,
// or if poll fails, everything is stale.
func (c *fsyncDropCache) stale() bool {
	if c.watch == nil {
		f, err := os.Open(selfMountinfo)
		if err != nil {
			return true
		}
		c.watch = f
		return true
	}
	fds := []unix.PollFd{{Fd: int32(c.watch.Fd()), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n != 0
}

// devDropsFsync reports whether a mount in the mountinfo listing r with
// device number dev is served by one of fsyncDroppers.
func devDropsFsync(r io.Reader, dev uint64) (bool, error) {
	entries, _, err := mountinfo.Parse(r)
	for i := range entries {
		e := &entries[i]
		if e.Major == unix.Major(dev) && e.Minor == unix.Minor(dev) && dropsFsync(e) {
			return true, err
		}
	}
	return false, err
}

// dropsFsync reports whether the mount is served by one of fsyncDroppers:
// fstype fuse.NAME or fuseblk.NAME, or a fuse mount whose source is NAME.
func dropsFsync(e *mountinfo.Entry) bool {
	for _, name := range fsyncDroppers {
		switch {
		case e.FSType == "fuse."+name, e.FSType == "fuseblk."+name:
			return true
		case (e.FSType == "fuse" || e.FSType == "fuseblk") && e.Source == name:
			return true
		}
	}
	return false
}
