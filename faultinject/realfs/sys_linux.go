package realfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// toolDirs are searched after PATH: go test may run with a PATH lacking
// the sbin directories where losetup, mkfs.* and mount helpers live.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// lookTool returns the full path of the first of names found in PATH or
// toolDirs.
func lookTool(names ...string) (string, bool) {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
		for _, dir := range toolDirs {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, true
			}
		}
	}
	return "", false
}

// cmdError is a failed external command: its command line, how it ended
// and everything it printed.
type cmdError struct {
	cmd    string
	err    error
	output string
}

func (e *cmdError) Error() string {
	out := strings.TrimSpace(e.output)
	if out == "" {
		out = "(no output)"
	}
	return fmt.Sprintf("realfs: %s: %v; output: %s", e.cmd, e.err, out)
}

func (e *cmdError) Unwrap() error { return e.err }

// exitCode is the exit status carried by err, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// run runs a command with cmdTimeout and returns its combined output. The
// output goes to a temporary file, not a pipe: FUSE mount helpers fork a
// daemon that could inherit a pipe and keep Wait from returning.
func run(path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := os.CreateTemp("", "realfs-cmd-*.log")
	if err != nil {
		return "", fmt.Errorf("realfs: output file for %s: %w", path, err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	b, rerr := os.ReadFile(out.Name())
	if rerr != nil && err == nil {
		err = rerr
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	if err != nil {
		return string(b), &cmdError{cmd: cmdline(path, args), err: err, output: string(b)}
	}
	return string(b), nil
}

func cmdline(path string, args []string) string {
	return strings.Join(append([]string{filepath.Base(path)}, args...), " ")
}

// poll calls done every 10 ms until it returns true or timeout passes.
func poll(timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	major, minor uint32
	point        string
	fstype       string
	options      string // per-mount options: rw or ro first
}

// readOnly reports whether the mount is read-only.
func (m mountInfo) readOnly() bool {
	return m.options == "ro" || strings.HasPrefix(m.options, "ro,")
}

// findMount returns the topmost mount on point, from the kernel's
// mountinfo as github.com/moby/sys/mountinfo parses it (escapes in paths
// undone; of several mounts on point the last listed is on top).
func findMount(point string) (mountInfo, bool, error) {
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.Mountpoint != point, false
	})
	if err != nil {
		return mountInfo{}, false, fmt.Errorf("realfs: reading mountinfo: %w", err)
	}
	if len(infos) == 0 {
		return mountInfo{}, false, nil
	}
	top := infos[len(infos)-1]
	return mountInfo{major: uint32(top.Major), minor: uint32(top.Minor), point: top.Mountpoint, fstype: top.FSType, options: top.Options}, true, nil
}

// isFUSE reports whether fstype is a FUSE filesystem: fuse, fuseblk or
// fuse.<subtype>.
func isFUSE(fstype string) bool {
	return fstype == "fuse" || fstype == "fuseblk" || strings.HasPrefix(fstype, "fuse.")
}

// waitFUSEMount waits until a FUSE filesystem is mounted on point.
func waitFUSEMount(point string) (mountInfo, error) {
	var m mountInfo
	var err error
	ok := poll(waitTimeout, func() bool {
		var found bool
		m, found, err = findMount(point)
		return err != nil || (found && isFUSE(m.fstype))
	})
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("realfs: no FUSE mount on %s in /proc/self/mountinfo after %v (found fstype %q)", point, waitTimeout, m.fstype)
	}
	return m, nil
}

// fuseMounted reports whether a FUSE filesystem is still mounted on point.
func fuseMounted(point string) bool {
	m, ok, err := findMount(point)
	return err == nil && ok && isFUSE(m.fstype)
}

// alive reports whether pid is a running (not zombie) process. A killed
// daemon is reparented to init or a subreaper, which may not reap it at
// once: a zombie serves nothing.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// waitExit waits until pid is gone or a zombie.
func waitExit(pid int) error {
	if !poll(waitTimeout, func() bool { return !alive(pid) }) {
		return fmt.Errorf("realfs: FUSE daemon pid %d still running after %v", pid, waitTimeout)
	}
	return nil
}

// findDaemon returns the pid of the process serving the FUSE mount m.
//
// First choice: the process holding a /dev/fuse descriptor whose fdinfo
// names the connection, "fuse_connection: <id>", where the id is the
// mount's device number in the kernel's encoding (major<<20 | minor; for
// fuseblk that is the block device). Kernels without that fdinfo line
// fall back to the command line: daemon binary, device and mountpoint.
func findDaemon(m mountInfo, daemon, device string) (int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("realfs: %w", err)
	}
	conn := strconv.FormatUint(uint64(m.major)<<20|uint64(m.minor), 10)
	byCmdline := 0
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := "/proc/" + p.Name()
		fds, _ := os.ReadDir(dir + "/fd")
		for _, fd := range fds {
			if target, _ := os.Readlink(dir + "/fd/" + fd.Name()); target != "/dev/fuse" {
				continue
			}
			info, _ := os.ReadFile(dir + "/fdinfo/" + fd.Name())
			for _, line := range strings.Split(string(info), "\n") {
				k, val, ok := strings.Cut(line, ":")
				if ok && k == "fuse_connection" && strings.TrimSpace(val) == conn && alive(pid) {
					return pid, nil
				}
			}
		}
		if byCmdline == 0 && cmdlineMatches(dir, daemon, device, m.point) && alive(pid) {
			byCmdline = pid
		}
	}
	if byCmdline != 0 {
		return byCmdline, nil
	}
	return 0, fmt.Errorf("%w: no process holds /dev/fuse for connection %s (%s on %s)", ErrDaemonNotFound, conn, device, m.point)
}

// cmdlineMatches reports whether /proc/<pid>/cmdline is daemon's with
// device and point among its arguments. fusefat rewrites its option
// arguments but keeps the paths.
func cmdlineMatches(dir, daemon, device, point string) bool {
	b, err := os.ReadFile(dir + "/cmdline")
	if err != nil || len(b) == 0 {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if filepath.Base(args[0]) != filepath.Base(daemon) {
		return false
	}
	var dev, pt bool
	for _, a := range args[1:] {
		dev = dev || a == device
		pt = pt || a == point
	}
	return dev && pt
}

// loopBackingFile is the backing file the kernel reports for a loop
// device, or "" when it is detached. A backing file unlinked or renamed
// over reads "<path> (deleted)".
func loopBackingFile(device string) string {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(device) + "/loop/backing_file")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loopBoundTo reports whether device is still attached to image (or to
// the inode that was image before Pull renamed the snapshot over it).
func loopBoundTo(device, image string) bool {
	b := loopBackingFile(device)
	return b == image || b == image+" (deleted)"
}

// copySparse copies src to dst, holes included, reading through the page
// cache so that it sees every write the loop driver has completed.
func copySparse(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("realfs: snapshot: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("realfs: snapshot: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("realfs: snapshot: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("realfs: snapshot: %w", cerr)
		}
	}()
	size := fi.Size()
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole up to the end
		}
		if err != nil {
			data = off // no SEEK_DATA: copy everything
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return fmt.Errorf("realfs: snapshot %s: %w", src, err)
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return fmt.Errorf("realfs: snapshot: %w", err)
	}
	return nil
}
