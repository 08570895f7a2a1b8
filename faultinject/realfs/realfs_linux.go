package realfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tools are the resolved binaries a volume of one kind runs.
type tools struct {
	losetup, umount, fusermount string // fusermount is optional
	mkfs, fsck, daemon          string
}

// toolSpec lists, per kind, the candidate names of each binary and the
// Debian package providing it.
type toolSpec struct {
	names []string
	pkg   string
}

var kindTools = map[Kind]struct{ mkfs, fsck, daemon toolSpec }{
	ExFAT: {
		mkfs:   toolSpec{[]string{"mkfs.exfat"}, "exfatprogs"},
		fsck:   toolSpec{[]string{"fsck.exfat"}, "exfatprogs"},
		daemon: toolSpec{[]string{"mount.exfat-fuse", "exfat-fuse"}, "exfat-fuse"},
	},
	VFAT: {
		mkfs:   toolSpec{[]string{"mkfs.vfat", "mkfs.fat"}, "dosfstools"},
		fsck:   toolSpec{[]string{"fsck.vfat", "fsck.fat"}, "dosfstools"},
		daemon: toolSpec{[]string{"fusefat"}, "fusefat"},
	},
}

// UnavailableError lists what keeps a kind from being used. It matches
// ErrUnavailable with errors.Is.
type UnavailableError struct {
	Kind    Kind
	Missing []string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("realfs %s unavailable: %s", e.Kind, strings.Join(e.Missing, "; "))
}

func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Available returns nil when volumes of kind can be made here: running as
// root, /dev/fuse openable, the loop driver present, and losetup, umount,
// the mkfs and fsck tools and the FUSE daemon installed. Otherwise it
// returns an *UnavailableError naming everything missing.
func Available(kind Kind) error {
	_, err := lookupTools(kind)
	return err
}

func lookupTools(kind Kind) (tools, error) {
	var t tools
	var missing []string
	spec, ok := kindTools[kind]
	if !ok {
		return t, &UnavailableError{kind, []string{fmt.Sprintf("unknown kind %q (want %q or %q)", kind, ExFAT, VFAT)}}
	}
	if euid := os.Geteuid(); euid != 0 {
		missing = append(missing, fmt.Sprintf("not root (euid %d): loop devices and mounts need root", euid))
	}
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		missing = append(missing, fmt.Sprintf("cannot open /dev/fuse (%v): modprobe fuse, or give the container --device /dev/fuse", errors.Unwrap(err)))
	} else {
		f.Close()
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		missing = append(missing, "no /dev/loop-control: loop driver not loaded (modprobe loop), or container without loop devices")
	}
	find := func(dst *string, s toolSpec) {
		if p, ok := lookTool(s.names...); ok {
			*dst = p
			return
		}
		missing = append(missing, fmt.Sprintf("%s not found (apt-get install %s)", strings.Join(s.names, " or "), s.pkg))
	}
	find(&t.losetup, toolSpec{[]string{"losetup"}, "mount"})
	find(&t.umount, toolSpec{[]string{"umount"}, "mount"})
	find(&t.mkfs, spec.mkfs)
	find(&t.fsck, spec.fsck)
	find(&t.daemon, spec.daemon)
	t.fusermount, _ = lookTool("fusermount", "fusermount3")
	if len(missing) > 0 {
		return t, &UnavailableError{kind, missing}
	}
	return t, nil
}

// New creates a volume: a sparse image file, attached to a loop device,
// formatted and mounted through the kind's FUSE daemon. It registers
// t.Cleanup to unmount, detach and remove everything, test failed or not.
// On error nothing is left behind.
func New(t testing.TB, opts Options) (*Volume, error) {
	t.Helper()
	tl, err := lookupTools(opts.Kind)
	if err != nil {
		return nil, err
	}
	if opts.SizeMiB < 0 {
		return nil, fmt.Errorf("realfs: negative SizeMiB %d", opts.SizeMiB)
	}
	if opts.SizeMiB == 0 {
		opts.SizeMiB = DefaultSizeMiB
	}
	dir, err := os.MkdirTemp(opts.Dir, "realfs-"+string(opts.Kind)+"-")
	if err != nil {
		return nil, fmt.Errorf("realfs: %w", err)
	}
	// mountinfo shows the resolved absolute path.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	v := &Volume{
		Mount: filepath.Join(dir, "mnt"),
		Image: filepath.Join(dir, string(opts.Kind)+".img"),
		Kind:  opts.Kind,
		opts:  opts,
		dir:   dir,
		tools: tl,
	}
	t.Cleanup(func() {
		if err := v.Cleanup(); err != nil {
			t.Errorf("realfs: cleanup of %s volume %s: %v", v.Kind, v.dir, err)
		}
	})
	if err := v.create(); err != nil {
		return nil, errors.Join(err, v.Cleanup())
	}
	return v, nil
}

// create makes the mountpoint and the image, attaches, formats, mounts.
func (v *Volume) create() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := os.Mkdir(v.Mount, 0o755); err != nil {
		return fmt.Errorf("realfs: %w", err)
	}
	f, err := os.OpenFile(v.Image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("realfs: %w", err)
	}
	err = f.Truncate(int64(v.opts.SizeMiB) << 20) // sparse
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("realfs: image: %w", err)
	}
	if err := v.attach(false); err != nil {
		return err
	}
	var args []string
	if v.Kind == VFAT && v.opts.SizeMiB >= 64 {
		args = append(args, "-F", "32")
	}
	if _, err := run(v.tools.mkfs, append(args, v.Device)...); err != nil {
		return err
	}
	return v.mount(false)
}

// attach attaches the image to a free loop device. Buffered I/O (no
// --direct-io): see the package documentation for why that is enough.
func (v *Volume) attach(ro bool) error {
	args := []string{"--find", "--show"}
	if ro {
		args = append(args, "--read-only")
	}
	out, err := run(v.tools.losetup, append(args, v.Image)...)
	if err != nil {
		return err
	}
	dev := strings.TrimSpace(out)
	if !strings.HasPrefix(dev, "/dev/") || strings.ContainsAny(dev, " \n") {
		return fmt.Errorf("realfs: losetup printed %q, not a device", out)
	}
	v.Device = dev
	return nil
}

// detach detaches the loop device. The kernel defers the detach
// (autoclear) while the device is still open. With wait, a device not
// released within waitTimeout is an error; without, it is remembered in
// lingering for Cleanup to check.
func (v *Volume) detach(wait bool) error {
	dev := v.Device
	if dev == "" {
		return nil
	}
	if _, err := run(v.tools.losetup, "-d", dev); err != nil && loopBoundTo(dev, v.Image) {
		return err
	}
	v.Device = ""
	if !wait {
		if loopBoundTo(dev, v.Image) {
			v.lingering = append(v.lingering, dev)
		}
		return nil
	}
	if !poll(waitTimeout, func() bool { return !loopBoundTo(dev, v.Image) }) {
		v.lingering = append(v.lingering, dev)
		return fmt.Errorf("realfs: %s still attached to %s after losetup -d and %v", dev, v.Image, waitTimeout)
	}
	return nil
}

// daemonArgs is the mount command line for the kind.
func (v *Volume) daemonArgs(ro bool) []string {
	switch v.Kind {
	case ExFAT:
		mode := "rw"
		if ro {
			mode = "ro"
		}
		return []string{"-o", mode, v.Device, v.Mount}
	default:
		// fusefat opens the image read-only unless given rw+ (its "I
		// accept the risk" switch). -s: fusefat shares one descriptor
		// between threads with lseek+read, so it must run single-threaded.
		mode := "rw+"
		if ro {
			mode = "ro"
		}
		return []string{"-s", "-o", mode, v.Device, v.Mount}
	}
}

// mount starts the daemon on the attached device and waits for the mount.
func (v *Volume) mount(ro bool) error {
	if _, err := run(v.tools.daemon, v.daemonArgs(ro)...); err != nil {
		return err
	}
	m, err := waitFUSEMount(v.Mount)
	if err != nil {
		return err
	}
	v.mounted, v.readOnly = true, ro
	pid, err := findDaemon(m, v.tools.daemon, v.Device)
	if err != nil {
		return err
	}
	v.pid = pid
	if ro && !m.readOnly() {
		return fmt.Errorf("realfs: %s mounted with options %q, want ro", v.Mount, m.options)
	}
	return nil
}

// DaemonPID returns the pid of the FUSE daemon serving the mount, or 0
// when not mounted.
func (v *Volume) DaemonPID() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.mounted {
		return 0
	}
	return v.pid
}

// Unmount unmounts cleanly (the daemon flushes and exits), waits for the
// daemon to exit and detaches the loop device. It fails, leaving the
// volume mounted, while files on it are open. After Pull it removes the
// dead mount.
func (v *Volume) Unmount() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return ErrClosed
	case v.dead:
		return v.clearDead()
	case !v.mounted:
		return ErrNotMounted
	}
	return v.unmount()
}

func (v *Volume) unmount() error {
	// The code under test may have unmounted it already (ejectsafe eject
	// does): then only the daemon and the loop device are left to clear.
	if _, present, err := findMount(v.Mount); err != nil {
		return err
	} else if present {
		if _, err := run(v.tools.umount, v.Mount); err != nil {
			return err
		}
	}
	v.mounted = false
	// For fuse (not fuseblk) umount returns before the daemon has seen
	// it; the daemon's last writes reach the loop device when it exits.
	if err := waitExit(v.pid); err != nil {
		return err
	}
	v.pid = 0
	return v.detach(true)
}

// Pull is a surprise removal. In order:
//
//  1. Hold the loop device open, so the daemon's exit is not the last
//     close (a last close writes the device's page cache back).
//  2. SIGKILL the daemon and wait for it to die: what it had not written
//     to the device is lost, and the kernel aborts the FUSE connection.
//  3. Unless Options.PullKeepsDeviceCache, copy the image aside: that is
//     what reached the medium. What the daemon wrote to the loop device
//     without fsyncing it is still in the device's page cache, which a
//     real yank loses. With PullKeepsDeviceCache, fsync the device instead.
//  4. Release the hold and detach the loop device (deferred by the kernel
//     while a fuseblk mount still holds it). Detaching writes the page
//     cache back into the old image inode...
//  5. ...which the copy of step 3 then replaces.
//
// The dead mount stays on Mount, as a yanked drive's mount stays until
// someone unmounts it: path operations under Mount and writes to files
// open across the Pull fail with ENOTCONN (reads may still be answered
// from the kernel's page cache), instead of silently reaching the empty
// directory a lazy unmount would uncover. Remount, Unmount and Cleanup
// lazy-unmount it (umount -l, else fusermount -uz).
func (v *Volume) Pull() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if !v.mounted {
		return ErrNotMounted
	}
	hold, err := os.Open(v.Device)
	if err != nil {
		return fmt.Errorf("realfs: pull: holding %s: %w", v.Device, err)
	}
	defer hold.Close()
	if err := v.kill(); err != nil {
		return err
	}
	v.mounted, v.dead = false, true
	var errs []error
	snapshot := v.Image + ".pull"
	if v.opts.PullKeepsDeviceCache {
		if err := hold.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("realfs: pull: fsync %s: %w", v.Device, err))
		}
	} else if err := copySparse(v.Image, snapshot); err != nil {
		errs = append(errs, err)
		snapshot = ""
	}
	if err := hold.Close(); err != nil {
		errs = append(errs, fmt.Errorf("realfs: pull: %w", err))
	}
	errs = append(errs, v.detach(false))
	if !v.opts.PullKeepsDeviceCache && snapshot != "" {
		if err := os.Rename(snapshot, v.Image); err != nil {
			errs = append(errs, fmt.Errorf("realfs: pull: %w", err))
		}
	}
	return errors.Join(errs...)
}

// kill SIGKILLs the daemon and waits for it to die.
func (v *Volume) kill() error {
	pid := v.pid
	if m, ok, err := findMount(v.Mount); err == nil && ok && isFUSE(m.fstype) {
		// The pid found at mount time could have been reused.
		if p, err := findDaemon(m, v.tools.daemon, v.Device); err == nil {
			pid = p
		}
	}
	if pid == 0 || !alive(pid) {
		return fmt.Errorf("%w: pid %d for %s", ErrDaemonNotFound, pid, v.Mount)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("realfs: kill -9 %d: %w", pid, err)
	}
	if err := waitExit(pid); err != nil {
		return err
	}
	v.pid = 0
	return nil
}

// clearDead lazy-unmounts the dead mount Pull left on Mount.
func (v *Volume) clearDead() error {
	if !v.dead {
		return nil
	}
	if err := v.lazyUnmount(); err != nil {
		return err
	}
	v.dead = false
	return nil
}

// lazyUnmount detaches the FUSE mount on Mount from the tree, dead or
// alive, open files or not.
func (v *Volume) lazyUnmount() error {
	if !fuseMounted(v.Mount) {
		return nil
	}
	_, err := run(v.tools.umount, "-l", v.Mount)
	if err != nil && v.tools.fusermount != "" {
		if _, ferr := run(v.tools.fusermount, "-uz", v.Mount); ferr == nil {
			err = nil
		} else {
			err = errors.Join(err, ferr)
		}
	}
	if err != nil && fuseMounted(v.Mount) {
		return err
	}
	return nil
}

// Remount attaches the image again and mounts it read-write on the same
// Mount path: after Pull, Unmount or RemountReadOnly. On a live mount it
// unmounts cleanly first. Device may change.
func (v *Volume) Remount() error {
	return v.remount(false)
}

// RemountReadOnly unmounts cleanly (if mounted) and mounts again
// read-only, the loop device read-only too: writes fail with EROFS.
// Remount goes back to read-write.
func (v *Volume) RemountReadOnly() error {
	return v.remount(true)
}

func (v *Volume) remount(ro bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if v.mounted {
		if err := v.unmount(); err != nil {
			return err
		}
	}
	if err := v.clearDead(); err != nil {
		return err
	}
	if err := v.detach(true); err != nil {
		return err
	}
	if err := v.attach(ro); err != nil {
		return err
	}
	if err := v.mount(ro); err != nil {
		return errors.Join(err, v.teardown())
	}
	return nil
}

// Fsck runs the kind's checker read-only (fsck.exfat -n, fsck.vfat -n)
// on the image. The volume must not be mounted: call it after Pull or
// Unmount. A checker that finds errors is not an error: see
// FsckReport.Clean. An error means the checker could not check.
func (v *Volume) Fsck() (FsckReport, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return FsckReport{}, ErrClosed
	}
	if v.mounted {
		return FsckReport{}, ErrMounted
	}
	args := []string{"-n", v.Image}
	rep := FsckReport{Command: cmdline(v.tools.fsck, args)}
	out, err := run(v.tools.fsck, args...)
	rep.Output = out
	rep.ExitCode = exitCode(err)
	if err == nil {
		rep.ExitCode, rep.Clean = 0, true
		return rep, nil
	}
	// fsck.exfat: 1 corrected, 4 errors left; 8 and up cannot check.
	// fsck.fat: 1 errors found; 2 usage, filesystem not accessed.
	switch {
	case v.Kind == ExFAT && (rep.ExitCode == 1 || rep.ExitCode == 4):
		return rep, nil
	case v.Kind == VFAT && rep.ExitCode == 1:
		return rep, nil
	}
	return rep, err
}

// fillerName is the file Fill writes on the volume.
const fillerName = "realfs-filler.bin"

// Fill writes a filler file until the volume is full (writes fail with
// FullErrno[v.Kind]), then shrinks it so that at most leave bytes are
// free (leave rounded down to the cluster size), and fsyncs it. It does
// not use statfs: fusefat reports no sizes. Unfill removes the filler.
func (v *Volume) Fill(leave int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.writable(); err != nil {
		return err
	}
	name := filepath.Join(v.Mount, fillerName)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("realfs: fill: %w", err)
	}
	empty, err := fillFile(f, leave, FullErrno[v.Kind])
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("realfs: fill: %w", cerr)
	}
	if err == nil && empty {
		// Never truncate to zero: fusefat corrupts the file (see the
		// package documentation).
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("realfs: fill: %w", err)
		}
	}
	return err
}

// fillFile appends to f until the volume is full, then gives back leave
// bytes. It reports empty when the whole filler must go instead.
func fillFile(f *os.File, leave int64, full syscall.Errno) (empty bool, err error) {
	zeros := make([]byte, 1<<20)
	// Each size until ENOSPC: the last FUSE write request that fails can
	// leave up to a request's worth of space free.
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		for {
			_, err := f.Write(zeros[:chunk])
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, full) {
				break
			}
			if err != nil {
				return false, fmt.Errorf("realfs: fill: %w", err)
			}
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("realfs: fill: %w", err)
	}
	if leave >= fi.Size() {
		return true, nil
	}
	if leave > 0 {
		if err := f.Truncate(fi.Size() - leave); err != nil {
			return false, fmt.Errorf("realfs: fill: shrinking filler: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("realfs: fill: %w", err)
	}
	return false, nil
}

// Unfill removes the filler file written by Fill; no filler is not an
// error.
func (v *Volume) Unfill() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.writable(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(v.Mount, fillerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("realfs: unfill: %w", err)
	}
	return nil
}

func (v *Volume) writable() error {
	switch {
	case v.closed:
		return ErrClosed
	case !v.mounted:
		return ErrNotMounted
	case v.readOnly:
		return ErrReadOnly
	}
	return nil
}

// Cleanup unmounts (cleanly if possible, else by killing the daemon and
// lazy unmounting), detaches the loop device, waits for every loop device
// the volume used to be released and removes the volume's directory. It
// is idempotent and registered with t.Cleanup by New; call it directly
// to check for leftovers before the test ends.
func (v *Volume) Cleanup() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	var errs []error
	if v.mounted {
		if err := v.unmount(); err != nil && v.mounted {
			errs = append(errs, err, v.teardown())
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if err := v.clearDead(); err != nil {
		errs = append(errs, err)
	}
	if err := v.detach(true); err != nil {
		errs = append(errs, err)
	}
	for _, dev := range v.lingering {
		if !poll(waitTimeout, func() bool { return !loopBoundTo(dev, v.Image) }) {
			errs = append(errs, fmt.Errorf("realfs: %s still attached to %s: a file on the pulled mount %s is still open", dev, v.Image, v.Mount))
		}
	}
	v.lingering = nil
	if m, ok, err := findMount(v.Mount); err != nil || ok {
		errs = append(errs, fmt.Errorf("realfs: %s still mounted (%s), not removing %s: %v", v.Mount, m.fstype, v.dir, err))
	} else if err := os.RemoveAll(v.dir); err != nil {
		errs = append(errs, fmt.Errorf("realfs: %w", err))
	}
	return errors.Join(errs...)
}

// teardown forces everything down: kill the daemon, lazy unmount, detach.
func (v *Volume) teardown() error {
	var errs []error
	if v.mounted {
		if v.pid != 0 && alive(v.pid) {
			errs = append(errs, v.kill())
		}
		v.mounted, v.dead = false, true
	}
	errs = append(errs, v.clearDead(), v.detach(false))
	return errors.Join(errs...)
}
