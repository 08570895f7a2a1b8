package checkpoint

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"golang.org/x/sys/unix"
)

// fdFile is an OS file whose Fd is another file's descriptor: its ReadAt
// and WriteAt reach the real file, while copy_file_range meets the other
// one. It counts the calls to Fd, that is the copy_file_range attempts.
type fdFile struct {
	device.File
	fd    uintptr
	calls *int
}

func (f *fdFile) Fd() uintptr { *f.calls++; return f.fd }

// fsImmutable is FS_IMMUTABLE_FL (linux/fs.h).
const fsImmutable = 0x10

// TestCopyRange_fallback (review finding 3): where copy_file_range is
// refused the way Go's own copy falls back on, copyRange copies through
// user space instead of failing the commit, the files end identical, and
// the refusal is remembered: later stretches make no system call. The
// refusals are the kernel's own: EPERM (what a seccomp filter answers;
// here an immutable destination descriptor), and a call that copies
// nothing (here a source descriptor at its end of file). With descriptors
// that work, the kernel copies and is asked again.
func TestCopyRange_fallback(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20+123)
	rng := rand.New(rand.NewPCG(3, 12))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	srcName, dstName := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(srcName, data, 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(name string, mode device.OpenMode) device.File {
		t.Helper()
		f, err := device.OS.Open(name, mode)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	fdOf := func(f device.File) uintptr { return f.(interface{ Fd() uintptr }).Fd() }
	stretches := [][2]int64{{0, 1 << 20}, {1 << 20, 512 << 10}, {3 << 19, int64(len(data)) - 3<<19}}

	for _, tc := range []struct {
		name string
		// fds returns the descriptors copy_file_range gets for src, dst.
		fds  func(t *testing.T, src, dst device.File) (uintptr, uintptr)
		kept bool // the kernel is still asked after the first stretch
	}{
		{"works", func(t *testing.T, src, dst device.File) (uintptr, uintptr) { return fdOf(src), fdOf(dst) }, true},
		{"EPERM", func(t *testing.T, src, dst device.File) (uintptr, uintptr) {
			name := filepath.Join(dir, "immutable")
			if err := os.WriteFile(name, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			f := open(name, device.ReadWrite)
			fd := int(fdOf(f))
			flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
			if err == nil {
				err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags|fsImmutable)
			}
			if err != nil {
				t.Skipf("cannot make a file immutable here (root and ext4, btrfs or xfs needed): %v", err)
			}
			t.Cleanup(func() { unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags) })
			in, out := int64(0), int64(0)
			if _, err := unix.CopyFileRange(int(fdOf(src)), &in, fd, &out, 1, 0); !errors.Is(err, unix.EPERM) {
				t.Skipf("copy_file_range to an immutable file = %v; want EPERM", err)
			}
			return fdOf(src), uintptr(fd)
		}, false},
		{"copies nothing", func(t *testing.T, src, dst device.File) (uintptr, uintptr) {
			name := filepath.Join(dir, "empty")
			if err := os.WriteFile(name, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return fdOf(open(name, device.ReadOnly)), fdOf(dst)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(dstName)
			src := open(srcName, device.ReadOnly)
			d, err := device.OS.Create(dstName, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			sfd, dfd := tc.fds(t, src, d)
			var calls int
			sf, df := &fdFile{src, sfd, &calls}, &fdFile{d, dfd, &calls}
			var noKernel bool
			buf := make([]byte, chunkSize)
			for i, s := range stretches {
				before := calls
				if err := copyRange(df, sf, s[0], s[1], buf, &noKernel); err != nil {
					t.Fatalf("stretch %d: copyRange = %v", i, err)
				}
				if asked := calls > before; i > 0 && asked != tc.kept {
					t.Errorf("stretch %d: kernel asked %v; want %v", i, asked, tc.kept)
				}
			}
			if noKernel == tc.kept {
				t.Errorf("refusal remembered %v; want %v", noKernel, !tc.kept)
			}
			got, err := os.ReadFile(dstName)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("the copy (%d bytes) differs from the source (%d bytes)", len(got), len(data))
			}
		})
	}
}
