package store

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

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
