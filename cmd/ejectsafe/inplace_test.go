package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
)

// TestRun_verifyRecoverInPlace: `verify` and `recover` understand an
// in-place checkpoint cut after its redo log was durable (the database's
// writes failed): verify names the state and says the log would be
// applied, touching nothing; recover applies it, removes it, and the
// database is the new state; verify is then clean.
func TestRun_verifyRecoverInPlace(t *testing.T) {
	db := demoDB(t)
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// The new state: the demo's database with rows changed by the stock
	// shell (made first: a skip with the manager open would leave its
	// file held, and Windows cannot remove the test's directory); its
	// pages that differ go into the overlay.
	want := stockChanged(t, before, "UPDATE notes SET body = body || '-changed' WHERE id % 7 = 0")
	fsys := faultinject.Wrap(device.OS, 1)
	m, err := checkpoint.Open(fsys, db, checkpoint.Options{Mode: checkpoint.ModeInPlace})
	if err != nil {
		t.Fatal(err)
	}
	writeDiff(t, m, before, want)
	if len(want) < len(before) {
		if err := m.Truncate(int64(len(want))); err != nil {
			t.Fatal(err)
		}
	}
	fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpWriteAt).Matching("demo.db"))
	if err := m.Commit(); err == nil || !strings.Contains(err.Error(), "write in place") {
		t.Fatalf("commit with the database's writes failing: %v", err)
	}
	m.Close()

	code, out, _ := runCmd(t, "verify", db)
	if code != 1 || !strings.Contains(out, "in-place checkpoint in flight") || !strings.Contains(out, "rolled forward") || !strings.Contains(out, "-wal") {
		t.Fatalf("verify = %d:\n%s", code, out)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, before) {
		t.Fatal("verify modified the database")
	}
	code, out, _ = runCmd(t, "recover", db)
	if code != 0 || !strings.Contains(out, "rolled forward") {
		t.Fatalf("recover = %d:\n%s", code, out)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, want) {
		t.Fatal("after recover the database is not the checkpoint's new state")
	}
	if _, err := os.Stat(db + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the redo log survived recover (%v)", err)
	}
	if code, out, _ := runCmd(t, "verify", db); code != 0 {
		t.Errorf("verify after recover = %d:\n%s", code, out)
	}
}

// stockChanged returns db's bytes after sql run on a copy by the stock
// sqlite3 shell (which checkpoints on close).
func stockChanged(t *testing.T, db []byte, sql string) []byte {
	t.Helper()
	bin := stocktest.Bin(t, "the in-place CLI test")
	p := filepath.Join(t.TempDir(), "b.db")
	if err := os.WriteFile(p, db, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, p, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRun_verifyRetiredLog: an in-place checkpoint leaves its redo log
// retired beside the database (a header of zeros) until the store's
// Close; a process that ends before that leaves it on the drive. verify
// takes it for no log (exit 0, no finding, nothing modified) and recover
// has nothing to do.
func TestRun_verifyRetiredLog(t *testing.T) {
	db := demoDB(t)
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	want := stockChanged(t, before, "UPDATE notes SET body = body || '-changed' WHERE id % 7 = 0")
	m, err := checkpoint.Open(device.OS, db, checkpoint.Options{Mode: checkpoint.ModeInPlace})
	if err != nil {
		t.Fatal(err)
	}
	writeDiff(t, m, before, want)
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.InPlace != 1 {
		t.Fatalf("the commit did not go in place: %+v", st)
	}
	m.Close() // not RemoveRetiredLog: as a process that ends here
	log, err := os.ReadFile(db + "-wal")
	if err != nil || len(log) < 32 || !bytes.Equal(log[:32], make([]byte, 32)) {
		t.Fatalf("the -wal after an in-place checkpoint: %d bytes, %v; want a retired log", len(log), err)
	}
	code, out, errOut := runCmd(t, "verify", db)
	if code != 0 || strings.Contains(out, "-wal") {
		t.Fatalf("verify beside a retired log = %d:\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd(t, "recover", db); code != 0 || strings.Contains(out, "rolled") || strings.Contains(out, "-wal") {
		t.Fatalf("recover beside a retired log = %d:\n%s", code, out)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, want) {
		t.Fatal("the database is not the checkpoint's state")
	}
	if got, _ := os.ReadFile(db + "-wal"); !bytes.Equal(got, log) {
		t.Error("verify or recover changed the retired log")
	}
}

// writeDiff writes into m the 4 KiB pages of want that differ from
// before.
func writeDiff(t *testing.T, m *checkpoint.Main, before, want []byte) {
	t.Helper()
	for off := 0; off < len(want); off += 4096 {
		if off+4096 <= len(before) && bytes.Equal(before[off:off+4096], want[off:off+4096]) {
			continue
		}
		if err := m.WriteAt(want[off:off+4096], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
}
