package store

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/probe"
)

// playFS makes Open see the given filesystem class.
func playFS(t *testing.T, class probe.Class, fstype string) {
	t.Helper()
	real := probePath
	probePath = func(path string) (probe.Result, error) {
		p, err := real(path)
		p.Class, p.FSType = class, fstype
		return p, err
	}
	t.Cleanup(func() { probePath = real })
	warned.Range(func(k, _ any) bool { warned.Delete(k); return true }) // each test sees its own warnings
}

func TestOpen_networkFS(t *testing.T) {
	playFS(t, probe.Network, "nfs4")
	dir := t.TempDir()
	path := filepath.Join(dir, "net.db")
	before := dirState(t, dir)
	_, err := Open(path, nil)
	if !errors.Is(err, ErrNetworkFS) || !strings.Contains(err.Error(), "AllowNetworkFS") {
		t.Fatalf("Open on nfs4 = %v; want ErrNetworkFS naming the override", err)
	}
	if after := dirState(t, dir); after != before {
		t.Fatalf("a refused Open modified the directory")
	}
	var logs bytes.Buffer
	s, err := Open(path, &Options{AllowNetworkFS: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open with AllowNetworkFS: %v", err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "network filesystem") {
		t.Errorf("the override was not logged: %s", logs.String())
	}
}

func TestOpen_fuseLogged(t *testing.T) {
	playFS(t, probe.FUSE, "fuseblk")
	var logs bytes.Buffer
	s, err := Open(filepath.Join(t.TempDir(), "f.db"), &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "FUSE") {
		t.Errorf("FUSE not logged: %s", logs.String())
	}
}

// TestOpen_networkFS_wrappedOS: a decorator over the OS's FS (here
// faultinject.Faulty) is the OS's filesystem to the store: probed and
// refused on a network filesystem, as device.OS is. The in-memory FS is
// not probed.
func TestOpen_networkFS_wrappedOS(t *testing.T) {
	playFS(t, probe.Network, "nfs4")
	path := filepath.Join(t.TempDir(), "net.db")
	if s, err := Open(path, &Options{FS: faultinject.Wrap(device.OS, 1)}); !errors.Is(err, ErrNetworkFS) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open through a Faulty over device.OS on nfs4 = %v; want ErrNetworkFS", err)
	}
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(fiDB(fsys), &Options{FS: fsys})
	if err != nil {
		t.Fatalf("Open on the in-memory FS (never probed): %v", err)
	}
	s.Close()
}
