//go:build unix

package lease

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
)

// secretText stands for /etc/shadow: no byte of it may reach a message.
const secretText = "root:$6$Zq9!hash:19000:0:99999:7:::\n"

// TestRead_neverQuotes (issue 17, finding 5): a lease that is a link to a
// secret file is refused without being read, and a lease file whose
// content is not a lease is refused by field and reason, never by quoting
// its bytes. Before, the JSON decoder's message quoted the first byte
// ("invalid character 'r' looking for beginning of value") through the
// followed link.
func TestRead_neverQuotes(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte(secretText), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "0123456789abcdef.json")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	copyOf := filepath.Join(dir, "copy.json")
	if err := os.WriteFile(copyOf, []byte(secretText), 0o600); err != nil {
		t.Fatal(err)
	}
	fields := filepath.Join(dir, "fields.json")
	if err := os.WriteFile(fields, []byte(`{"version":1,"db":"a.db","pid":1,"start":0,"host":"h\u0001x","boot":"","state":"root:$6$","endpoint":"root.sock"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{link, copyOf, fields} {
		_, err := Read(device.OS, name)
		if err == nil {
			t.Fatalf("%s: read as a lease", name)
		}
		for _, leak := range []string{"'r'", `"r`, "root", "$6$", "Zq9"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: the error quotes the file (%q): %v", filepath.Base(name), leak, err)
			}
		}
	}
	if _, err := Read(device.OS, link); !errors.Is(err, device.ErrSymlink) {
		t.Errorf("a linked lease: %v; want ErrSymlink", err)
	}
}

// TestFind_fifo (finding 4): a FIFO in the lease directory, as a lease
// or as the directory itself, is reported invalid at once; before, Find
// (status, check, eject) blocked for ever opening it.
func TestFind_fifo(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".ejectsafe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, DirName), 0o644); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(root, "d")
	os.Mkdir(dbDir, 0o755)
	if err := syscall.Mkfifo(filepath.Join(dbDir, "x.db"+FallbackSuffix), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan []Found, 1)
	go func() { done <- collect(root, dbDir) }()
	select {
	case found := <-done:
		if len(found) != 1 || !errors.Is(found[0].Err, device.ErrNotRegular) {
			t.Errorf("found %+v; want the FIFO lease, invalid (ErrNotRegular)", found)
		}
	case <-time.After(time.Minute):
		t.Fatal("collect still blocked after a minute")
	}
}

// TestLeaseDir_existing (review of issue 17): an existing lease
// directory is no longer trusted for being writable. One this user owns
// is made shared (1777: a 0755 directory from an older version); one
// that other users may write and that is not sticky, or that another
// user (not root) owns and that is not sticky, is refused (they could
// replace the leases in it); a sticky one another user owns is shared
// as meant.
func TestLeaseDir_existing(t *testing.T) {
	mode := func(p string) os.FileMode {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode() & (os.ModePerm | os.ModeSticky)
	}
	setup := func(t *testing.T, perm os.FileMode, uid int) (root, dir string) {
		root = t.TempDir()
		dir = filepath.Join(root, DirName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, perm); err != nil {
			t.Fatal(err)
		}
		if uid != os.Geteuid() {
			if os.Geteuid() != 0 {
				t.Skip("SKIP LOUDLY: another user's directory needs root")
			}
			if err := os.Chown(dir, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		return root, dir
	}
	me := os.Geteuid()

	t.Run("mine, 0755: made shared", func(t *testing.T) {
		root, dir := setup(t, 0o755, me)
		got, err := leaseDir(root)
		if err != nil || got != dir {
			t.Fatalf("leaseDir = %q, %v", got, err)
		}
		for _, p := range []string{dir, filepath.Dir(dir)} {
			if m := mode(p); m != 0o777|os.ModeSticky {
				t.Errorf("%s: mode %v; want 1777", p, m)
			}
		}
	})
	t.Run("others may write, not sticky: refused", func(t *testing.T) {
		root, _ := setup(t, 0o777, 65534)
		if got, err := leaseDir(root); !errors.Is(err, ErrLeaseDir) {
			t.Fatalf("leaseDir = %q, %v; want ErrLeaseDir", got, err)
		}
	})
	t.Run("another user's, 0755: refused", func(t *testing.T) {
		root, _ := setup(t, 0o755, 65534)
		if got, err := leaseDir(root); !errors.Is(err, ErrLeaseDir) {
			t.Fatalf("leaseDir = %q, %v; want ErrLeaseDir", got, err)
		}
	})
	t.Run("another user's, 1777: shared", func(t *testing.T) {
		root, dir := setup(t, 0o777|os.ModeSticky, 65534)
		if got, err := leaseDir(root); err != nil || got != dir {
			t.Fatalf("leaseDir = %q, %v", got, err)
		}
		if m := mode(dir); m != 0o777|os.ModeSticky {
			t.Errorf("mode %v changed; want 1777", m)
		}
	})
}
