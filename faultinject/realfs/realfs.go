package realfs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kind names a removable-media filesystem and the FUSE daemon serving it.
type Kind string

const (
	// ExFAT is exFAT served by exfat-fuse (mount.exfat-fuse), formatted by
	// mkfs.exfat and checked by fsck.exfat (exfatprogs).
	ExFAT Kind = "exfat"
	// VFAT is FAT served by fusefat, formatted by mkfs.vfat and checked by
	// fsck.vfat (dosfstools). Images of 64 MiB or more are FAT32, smaller
	// ones whatever mkfs.vfat picks (FAT12/16).
	VFAT Kind = "vfat"
)

// Kinds lists every Kind, for tests that run on each.
var Kinds = []Kind{ExFAT, VFAT}

// FullErrno is the error number a write gets when the volume is full.
// fusefat answers EPERM, not ENOSPC, when it finds no free cluster (the
// kernel's own vfat driver would say ENOSPC): code meeting a full FAT
// drive through fusefat sees EPERM.
var FullErrno = map[Kind]syscall.Errno{ExFAT: syscall.ENOSPC, VFAT: syscall.EPERM}

// DefaultSizeMiB is the image size when Options.SizeMiB is zero: large
// enough for FAT32 with 512-byte clusters, small enough that Fill and
// the copy made by Pull take well under a second.
const DefaultSizeMiB = 64

// cmdTimeout bounds every external command; waitTimeout bounds every
// wait for the kernel or a daemon (mount visible, daemon gone, loop
// device released).
const (
	cmdTimeout  = 20 * time.Second
	waitTimeout = 10 * time.Second
)

// Options configures New.
type Options struct {
	// Kind is the filesystem. Required.
	Kind Kind

	// SizeMiB is the size of the sparse image file. Zero means
	// DefaultSizeMiB.
	SizeMiB int

	// Dir is where the volume's own directory, holding the image and the
	// mountpoint, is created (os.MkdirTemp(Dir, "realfs-<kind>-")). Empty
	// means the default temporary directory. The volume's directory is
	// removed by Cleanup once nothing is mounted on it.
	Dir string

	// PullKeepsDeviceCache makes Pull keep what the daemon had written to
	// the loop device but not yet flushed (still in the loop device's page
	// cache). The zero value, false, is the faithful model of a real stick:
	// that cache is host memory and is lost at a yank, so only what the
	// daemon fsynced (or what the kernel happened to write back) survives.
	// DANGER: true makes every daemon write durable at once, so a test can
	// no longer tell whether the daemon fsyncs; use it only to separate
	// "the daemon never wrote it" from "the daemon never flushed it".
	PullKeepsDeviceCache bool
}

// FsckReport is the result of a read-only filesystem check of the image.
type FsckReport struct {
	// Clean is true when the checker exited 0: no errors found.
	Clean bool
	// ExitCode is the checker's exit status.
	ExitCode int
	// Command is the command line that was run.
	Command string
	// Output is the checker's combined stdout and stderr.
	Output string
}

// Volume is a FUSE-mounted filesystem on a loop device backed by an image
// file. Its methods are safe for concurrent use, but they serialize: a
// method blocks while another runs.
type Volume struct {
	// Mount is the mountpoint, an absolute path with symlinks resolved.
	// It stays the same across Pull and Remount.
	Mount string
	// Device is the loop device the image is attached to, such as
	// /dev/loop3; empty while detached (after Pull or Unmount). Remount
	// may attach the image to a different loop device.
	Device string
	// Image is the image file.
	Image string
	// Kind is the filesystem.
	Kind Kind

	opts  Options
	dir   string // the volume's own directory: image and mountpoint
	tools tools

	mu       sync.Mutex
	pid      int  // FUSE daemon, 0 when not mounted
	mounted  bool // a live mount (daemon running) is on Mount
	dead     bool // a dead mount (daemon killed by Pull) is on Mount
	readOnly bool // the live mount is read-only
	closed   bool // Cleanup ran
	// lingering are loop devices detached with autoclear that the kernel
	// had not yet released: a pulled fuseblk mount keeps its loop device
	// until the last file open on the dead mount is closed.
	lingering []string
}

// loudOnce prints the loud skip line once per kind and process on stderr,
// where it shows even without go test -v.
var loudOnce sync.Map // Kind -> *sync.Once

// Skip skips the test with one loud line, "SKIP LOUDLY: realfs <kind>:
// <why>", when Available(kind) reports something missing. When the
// environment variable CI is non-empty on Linux it fails the test instead,
// so that CI never skips the real-filesystem tests silently. Call it first
// in every test that uses New.
func Skip(t testing.TB, kind Kind) {
	t.Helper()
	err := Available(kind)
	if err == nil {
		return
	}
	why := err.Error()
	var ue *UnavailableError
	if errors.As(err, &ue) {
		why = strings.Join(ue.Missing, "; ")
	}
	line := fmt.Sprintf("SKIP LOUDLY: realfs %s: %s", kind, why)
	if os.Getenv("CI") != "" && runtime.GOOS == "linux" {
		t.Fatalf("realfs %s cannot run, and CI is set so it must not skip: %s (install exfat-fuse exfatprogs fusefat dosfstools, run as root with /dev/fuse and loop devices)", kind, why)
	}
	once, _ := loudOnce.LoadOrStore(kind, new(sync.Once))
	once.(*sync.Once).Do(func() { fmt.Fprintln(os.Stderr, line) })
	t.Skip(line)
}
