//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/store"
)

// TestSymlinkToDrive: a database on a real exFAT/FAT drive reached
// through a symlink on the root filesystem (~/notes.db ->
// /media/usb/notes.db) is one database: a holder that opened it through
// the link keeps out Opens by either name; check and eject through the
// link find and release it; checkpoints through the link write the drive
// and leave the link a link.
func TestSymlinkToDrive(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(vol.Mount, "app.db")
			link := filepath.Join(t.TempDir(), "app.db")
			if err := os.Symlink(db, link); err != nil {
				t.Fatal(err)
			}
			holder := startHolder(t, link, "")
			pid := strconv.Itoa(holder.Process.Pid)
			for _, p := range []string{db, link} {
				if s, err := store.Open(p, nil); !errors.Is(err, store.ErrLocked) {
					if err == nil {
						s.Close()
					}
					t.Fatalf("Open(%s) while pid %s holds it through the link = %v; want ErrLocked", p, pid, err)
				}
			}
			if code, out, errs := runCmd(t, "check", link); code != 1 || !strings.Contains(out, "pid "+pid) {
				t.Fatalf("check %s = %d; want 1 naming pid %s:\n%s%s", link, code, pid, out, errs)
			}
			code, out, errs := runCmd(t, "eject", "--no-unmount", link)
			if code != 0 || !strings.Contains(out, "released") {
				t.Fatalf("eject --no-unmount %s = %d:\n%s%s", link, code, out, errs)
			}
			if c := exitCode(t, holder, 60*time.Second); c != 0 {
				t.Fatalf("holder exit %d after eject", c)
			}
			assertLink(t, link)
			if got := cliRead(t, db, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != fmt.Sprintf("%d\nok", holdRows) {
				t.Fatalf("sqlite3 reads %q from the drive; want %d rows, ok", got, holdRows)
			}

			// Checkpoints through the link, in this process.
			s, err := store.Open(link, &store.Options{ManualCheckpoint: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if _, err := s.DB().Exec("INSERT INTO t(v) VALUES('through the link')"); err != nil {
					t.Fatal(err)
				}
				if err := s.Checkpoint(context.Background()); err != nil {
					t.Fatal(err)
				}
				assertLink(t, link)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			assertLink(t, link)
			if got := cliRead(t, db, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != fmt.Sprintf("%d\nok", holdRows+3) {
				t.Fatalf("sqlite3 reads %q from the drive; want %d rows, ok", got, holdRows+3)
			}
		})
	}
}

func assertLink(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symlink (mode %v): the database was split", p, fi.Mode())
	}
}

// TestEject_zombieHolderOnDrive: on a real exFAT/FAT drive, holders
// killed with -9 and not yet reaped keep neither the drive nor their
// databases: check exits 0 naming them stale, eject removes their leases
// from the drive and their sockets, store.Open removes such a lease too,
// and a full eject unmounts.
func TestEject_zombieHolderOnDrive(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("SKIP LOUDLY: no /proc: zombies are told apart on Linux only")
	}
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(vol.Mount, "app.db")
			other := filepath.Join(vol.Mount, "other.db")
			// zombies starts a holder on each database, kills them with -9
			// and leaves them unreaped; it returns their leases.
			zombies := func(dbs ...string) []lease.Found {
				t.Helper()
				var pids []int
				for _, d := range dbs {
					pids = append(pids, startHolder(t, d, "").Process.Pid)
				}
				_, found, err := lease.Find(vol.Mount)
				if err != nil || len(found) != len(dbs) {
					t.Fatalf("leases %+v, %v; want %d", found, err, len(dbs))
				}
				for _, f := range found {
					if filepath.Dir(f.File) != filepath.Join(vol.Mount, lease.DirName) {
						t.Fatalf("lease %s is not in the volume's lease directory", f.File)
					}
				}
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
					waitZombie(t, pid)
				}
				return found
			}
			found := zombies(db, other)
			code, out, errs := runCmd(t, "check", vol.Mount)
			if code != 0 || strings.Count(out, "zombie") != 2 || !strings.Contains(out, "pid "+strconv.Itoa(found[0].Lease.PID)) {
				t.Fatalf("check with zombie holders = %d; want 0, naming both stale:\n%s%s", code, out, errs)
			}
			code, out, errs = runCmd(t, "eject", "--no-unmount", vol.Mount)
			if code != 0 || strings.Count(out, "removed the dead lease") != 2 {
				t.Fatalf("eject --no-unmount with zombie holders = %d; want 0, both leases removed:\n%s%s", code, out, errs)
			}
			for _, f := range found {
				for _, p := range []string{f.File, f.Lease.Endpoint} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("after eject: %s of a zombie is still there", p)
					}
				}
			}

			// Open removes a zombie's lease on the drive too.
			found = zombies(other)
			s, err := store.Open(db, &store.Options{ManualCheckpoint: true})
			if err != nil {
				t.Fatalf("Open beside a zombie holder: %v", err)
			}
			_, serr := s.DB().Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
			if err := s.Close(); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			if _, err := os.Lstat(found[0].File); err == nil {
				t.Errorf("after Open: the zombie's lease %s is still on the drive", found[0].File)
			}

			code, out, errs = runCmd(t, "eject", vol.Mount)
			if code != 0 || !strings.Contains(out, "unmounted") {
				t.Fatalf("eject = %d; want 0, unmounted:\n%s%s", code, out, errs)
			}
		})
	}
}
