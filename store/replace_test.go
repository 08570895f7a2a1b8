package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
)

// TestStore_checkpointReplacesFile: each checkpoint that changes the
// database replaces the file (a new inode), never writes it in place; a
// checkpoint with nothing to write leaves it alone.
func TestStore_checkpointReplacesFile(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustCheckpoint(t, s)
	// The copy is created while the old file still exists, so its inode
	// differs from the old one (ext4 may reuse numbers of files retired
	// earlier, so only the previous one is compared).
	prev, gen0 := inode(t, path), s.Stats().Generation
	for i := 0; i < 3; i++ {
		mustExec(t, s.DB(), "INSERT INTO t VALUES(?)", i)
		mustCheckpoint(t, s)
		ino := inode(t, path)
		if ino == prev {
			t.Fatalf("checkpoint %d: inode %d unchanged: the file was written, not replaced", i, ino)
		}
		prev = ino
	}
	before := inode(t, path)
	mustCheckpoint(t, s) // nothing to write
	if after := inode(t, path); after != before {
		t.Errorf("an empty checkpoint replaced the file (%d -> %d)", before, after)
	}
	if g := s.Stats().Generation; g != gen0+3 {
		t.Errorf("Generation = %d; want %d: one per checkpoint that wrote, none for the empty one", g, gen0+3)
	}
}

// gateFS, once armed, blocks the next Sync of a checkpoint copy until
// released.
type gateFS struct {
	device.FS
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (g *gateFS) Create(name string, perm os.FileMode) (device.File, error) {
	f, err := g.FS.Create(name, perm)
	if err != nil || !strings.Contains(filepath.Base(name), ".ejectsafe-tmp-") {
		return f, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	device.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	if f.g.armed.CompareAndSwap(true, false) {
		close(f.g.reached)
		<-f.g.release
	}
	return f.File.Sync()
}

// TestStore_commitsDuringCheckpoint holds a checkpoint inside its commit
// (the copy's fsync, within SQLite's checkpoint) and commits meanwhile:
// writers are never blocked by a checkpoint's I/O.
func TestStore_commitsDuringCheckpoint(t *testing.T) {
	g := &gateFS{FS: device.OS, reached: make(chan struct{}), release: make(chan struct{})}
	s, _ := openT(t, &Options{ManualCheckpoint: true, FS: g})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	mustCheckpoint(t, s)
	g.armed.Store(true)

	for i := 0; i < 100; i++ {
		mustExec(t, db, "INSERT INTO t VALUES(?)", i)
	}
	ckpt := make(chan error, 1)
	go func() { ckpt <- s.Checkpoint(context.Background()) }()
	<-g.reached

	committed := make(chan error, 1)
	go func() {
		for i := 0; i < 500; i++ {
			if _, err := db.Exec("INSERT INTO t VALUES(?)", i); err != nil {
				committed <- err
				return
			}
		}
		committed <- nil
	}()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a deadlock detector, not a speed check
		t.Fatal("commits blocked while the checkpoint's copy was being synced")
	}
	select {
	case err := <-ckpt:
		t.Fatalf("the checkpoint finished (%v) before its copy was synced", err)
	default:
	}
	close(g.release)
	if err := <-ckpt; err != nil {
		t.Fatal(err)
	}
	mustCheckpoint(t, s)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 600 {
		t.Fatalf("count = %d, %v; want 600", n, err)
	}
}
