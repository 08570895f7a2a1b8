package device_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

const (
	target = "/d/file"
	temp   = "/d/file.tmp"
)

var (
	oldData = []byte("old content")
	newData = []byte("new content, longer than the old")
)

func newFS(t *testing.T) *faultinject.FS {
	t.Helper()
	fs := faultinject.New(faultinject.Options{})
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	if err := fs.WriteFile(target, oldData, 0o644); err != nil {
		t.Fatal(err)
	}
	return fs.CrashImage(faultinject.KeepAll, 0) // everything durable
}

// TestWriteFile_crash cuts power before every operation of WriteFile,
// under every policy: the target holds exactly the old or the new
// content, never a mix or nothing, and the new one once WriteFile
// returned.
func TestWriteFile_crash(t *testing.T) {
	probe := newFS(t)
	start := probe.OpCount()
	if err := device.WriteFile(probe, target, temp, newData, 0o644); err != nil {
		t.Fatal(err)
	}
	n := probe.OpCount() - start
	if n < 5 { // create, write, fsync, close, rename, fsync dir
		t.Fatalf("WriteFile took %d operations", n)
	}
	for at := 0; at <= n; at++ {
		for _, policy := range faultinject.AllPolicies() {
			fs := newFS(t)
			fs.CrashAt(fs.OpCount()+at, policy, int64(at))
			err := device.WriteFile(fs, target, temp, newData, 0o644)
			img := fs.CrashedImage()
			if img == nil { // the cut came after the last operation
				img = fs.CrashImage(policy, int64(at))
			}
			got, rerr := img.ReadFile(target)
			switch {
			case rerr != nil:
				t.Fatalf("crash at op %d (%v): target: %v", at, policy, rerr)
			case err == nil && !bytes.Equal(got, newData):
				t.Fatalf("crash at op %d (%v): WriteFile returned nil but the target holds %q", at, policy, got)
			case !bytes.Equal(got, newData) && !bytes.Equal(got, oldData):
				t.Fatalf("crash at op %d (%v): the target holds %q, neither old nor new", at, policy, got)
			}
		}
	}
}

// TestPending_syncFails: a failed fsync fails the replacement, is not
// retried, and Abort removes the temporary file; the target is untouched.
func TestPending_syncFails(t *testing.T) {
	fs := newFS(t)
	if err := fs.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpSync).Matching(temp)); err != nil {
		t.Fatal(err)
	}
	p, err := device.CreatePending(fs, target, temp, 0o644, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.File().WriteAt(newData, 0); err != nil {
		t.Fatal(err)
	}
	err = p.Sync()
	var re *device.ReplaceError
	if !errors.As(err, &re) || re.Op != device.OpSync || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync = %v, want a ReplaceError %q wrapping EIO", err, device.OpSync)
	}
	if err := p.Commit(nil); err == nil {
		t.Fatal("Commit after a failed Sync succeeded")
	}
	if !p.Abort() {
		t.Fatal("Abort did not remove the temporary file")
	}
	syncs := 0
	for _, ev := range fs.Trace() {
		if ev.Kind == faultinject.OpSync && ev.Path == temp {
			syncs++
		}
	}
	if syncs != 1 {
		t.Errorf("the temporary file was fsynced %d times, want 1 (never retried)", syncs)
	}
	if v := faultinject.Check(fs.Trace(), faultinject.CheckConfig{}); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
	if got, _ := fs.ReadFile(target); !bytes.Equal(got, oldData) {
		t.Errorf("target = %q, want the old content", got)
	}
	if _, err := fs.Stat(temp); err == nil {
		t.Error("the temporary file is still there")
	}
}

// TestPending_hook: the hook runs after the fsync and before the rename;
// its error stops the rename and is returned as it is.
func TestPending_hook(t *testing.T) {
	fs := newFS(t)
	p, err := device.CreatePending(fs, target, temp, 0o644, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.File().WriteAt(newData, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	hookErr := errors.New("hook")
	if err := p.Commit(func() error {
		if got, _ := fs.ReadFile(temp); !bytes.Equal(got, newData) {
			t.Errorf("in the hook the temporary file holds %q", got)
		}
		return hookErr
	}); err != hookErr {
		t.Fatalf("Commit = %v, want the hook's error", err)
	}
	if got, _ := fs.ReadFile(target); !bytes.Equal(got, oldData) {
		t.Errorf("target = %q after a failed hook, want the old content", got)
	}
	p.Abort()
	if _, err := fs.Stat(temp); err == nil {
		t.Error("the temporary file is still there after Abort")
	}
}

// TestCreatePending_otherDirectory: a temporary file outside the target's
// directory is refused (the rename would cross filesystems).
func TestCreatePending_otherDirectory(t *testing.T) {
	fs := newFS(t)
	if _, err := device.CreatePending(fs, target, "/other.tmp", 0o644, false); err == nil {
		t.Fatal("CreatePending accepted a temporary file in another directory")
	}
}
