//go:build linux

package store

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// leftLog crashes a child after 10 commits and returns the log it left.
func leftLog(t *testing.T, path, hostDir string) string {
	t.Helper()
	crashAfterCommits(t, path, hostDir, 10)
	logs, _ := filepath.Glob(filepath.Join(hostDir, "*"+hlSuffix))
	if len(logs) != 1 {
		t.Fatalf("host logs after the crash: %v", logs)
	}
	return logs[0]
}

// reopenKept opens path and checks that the log was kept aside (not
// applied) for the reason want, and that the database has rows rows.
func reopenKept(t *testing.T, path, hostDir string, want error, rows int) {
	t.Helper()
	s := openHL(t, path, hostDir, nil)
	defer s.Close()
	rep := s.Recovery()
	if rep.HostLog != "kept_aside" || !errors.Is(rep.HostLogErr, want) {
		t.Fatalf("Recovery: HostLog %q, err %v; want kept_aside, %v", rep.HostLog, rep.HostLogErr, want)
	}
	if len(rep.KeptAside) != 1 || !strings.Contains(rep.KeptAside[0], hlKeptInfix) {
		t.Errorf("KeptAside = %v", rep.KeptAside)
	} else if _, err := os.Stat(rep.KeptAside[0]); err != nil {
		t.Errorf("kept log: %v", err)
	}
	if got := countT(t, s); got != rows {
		t.Errorf("%d rows, want %d (the log not applied)", got, rows)
	}
	var check string
	if err := s.DB().QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}

// TestHostLog_NeverApplied: a log of another database, of another
// generation (the drive written by stock SQLite meanwhile), a garbage
// header, or a HostLog-level log from before a reboot is kept aside and
// reported, never applied.
func TestHostLog_NeverApplied(t *testing.T) {
	t.Run("foreign", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		a, b := filepath.Join(t.TempDir(), "a.db"), filepath.Join(t.TempDir(), "b.db")
		logA := leftLog(t, a, hostDir)
		// b: its own database, with one checkpointed commit.
		crashAfterCommits(t, b, hostDir, 0)
		sb := openHL(t, b, hostDir, nil)
		if err := commitPair(sb.DB(), 7, 1); err != nil {
			t.Fatal(err)
		}
		if err := sb.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(logA, filepath.Join(hostDir, hostLogName(b))); err != nil {
			t.Fatal(err)
		}
		reopenKept(t, b, hostDir, ErrHostLogForeign, 2)
	})
	t.Run("generation", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		path := filepath.Join(t.TempDir(), "a.db")
		leftLog(t, path, hostDir)
		// Stock SQLite writes the database meanwhile.
		if out, err := exec.Command("sqlite3", path, "INSERT INTO t VALUES(9, 9, 0, x'00'), (9, 9, 1, x'00')").CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v: %s", err, out)
		}
		reopenKept(t, path, hostDir, ErrHostLogGeneration, 2)
	})
	t.Run("torn", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		path := filepath.Join(t.TempDir(), "a.db")
		log := leftLog(t, path, hostDir)
		f, err := os.OpenFile(log, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		garbage := make([]byte, 2*hlSlot)
		rand.New(rand.NewSource(1)).Read(garbage)
		f.WriteAt(garbage, 0)
		f.Close()
		reopenKept(t, path, hostDir, ErrHostLogTorn, 0)
	})
	t.Run("other boot", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		path := filepath.Join(t.TempDir(), "a.db")
		setBoot(t, leftLog(t, path, hostDir), "another-boot")
		reopenKept(t, path, hostDir, ErrHostLogOtherBoot, 0)
	})
}

// setBoot rewrites a log's header as if written during another boot.
func setBoot(t *testing.T, log, boot string) {
	t.Helper()
	f, err := os.OpenFile(log, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHead(f)
	if err != nil {
		t.Fatal(err)
	}
	h.boot = boot
	h.seq++
	if _, err := f.WriteAt(h.encode(), int64(h.seq%2)*hlSlot); err != nil {
		t.Fatal(err)
	}
}

// TestHostLog_HostSyncOtherBoot: a HostSync log was flushed at every
// commit, so it is replayed after a reboot too.
func TestHostLog_HostSyncOtherBoot(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	os.Setenv("EJECTSAFE_HOSTLOG_DURABILITY", strconv.Itoa(int(HostSync)))
	log := leftLog(t, path, hostDir)
	os.Unsetenv("EJECTSAFE_HOSTLOG_DURABILITY")
	setBoot(t, log, "another-boot")
	s := openHL(t, path, hostDir, &Options{Durability: HostSync})
	defer s.Close()
	if got := countT(t, s); got != 20 || s.Recovery().HostLog != "replayed" {
		t.Errorf("%d rows, HostLog %q; want 20, replayed", got, s.Recovery().HostLog)
	}
}

// TestHostLog_Abandon: Abandon keeps the log; the next Open replays it.
func TestHostLog_Abandon(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	s := openHL(t, path, hostDir, nil)
	mustExec(t, s.DB(), "CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half))")
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := commitPair(s.DB(), 0, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	s = openHL(t, path, hostDir, nil)
	if got := countT(t, s); got != 10 || s.Recovery().HostLog != "replayed" {
		t.Errorf("%d rows, HostLog %q; want 10, replayed", got, s.Recovery().HostLog)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHostDir_Refused: a host-log directory others can enter, or that
// another user owns, is refused before anything is written.
func TestHostDir_Refused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
	}{
		{"group and others", func(dir string) error { return os.Chmod(dir, 0o755) }},
		{"other owner", func(dir string) error { return os.Chown(dir, 65534, 65534) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hostDir := filepath.Join(t.TempDir(), "h")
			if err := os.Mkdir(hostDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(hostDir); err != nil {
				t.Skipf("SKIP: %v", err)
			}
			_, err := Open(filepath.Join(t.TempDir(), "a.db"), &Options{HostDir: hostDir, Durability: HostLog})
			if !errors.Is(err, ErrHostDir) {
				t.Fatalf("Open: %v, want ErrHostDir", err)
			}
			// The default level falls back to Checkpoint, and writes
			// nothing there.
			s, err := Open(filepath.Join(t.TempDir(), "b.db"), &Options{HostDir: hostDir})
			if err != nil {
				t.Fatalf("Open at the default level: %v", err)
			}
			defer s.Close()
			if s.opts.Durability != Checkpoint {
				t.Errorf("durability %v, want checkpoint", s.opts.Durability)
			}
			if names, _ := os.ReadDir(hostDir); len(names) != 0 {
				t.Errorf("written in the refused directory: %v", names)
			}
		})
	}
}

// TestHostLog_OtherUser: another user (uid 65534) can neither read nor
// write a host log, nor list the directory.
func TestHostLog_OtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root to run a command as uid 65534")
	}
	hostDir := filepath.Join(t.TempDir(), "h")
	log := leftLog(t, filepath.Join(t.TempDir(), "a.db"), hostDir)
	// t.TempDir's directories are 0700 too: open the way to hostDir so
	// that only its own mode stands in between.
	for d := filepath.Dir(hostDir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	for _, c := range []string{"head -c 1 " + log, "echo x >> " + log, "ls " + hostDir} {
		cmd := exec.Command("sh", "-c", c)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("as uid 65534, %q succeeded: %s", c, out)
		} else if !strings.Contains(string(out), "ermission denied") {
			t.Errorf("as uid 65534, %q: %v: %s; want permission denied", c, err, out)
		}
	}
	fi, err := os.Stat(log)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
