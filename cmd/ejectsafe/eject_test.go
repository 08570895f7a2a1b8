package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/bench"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/store"
)

const (
	holderEnv = "EJECTSAFE_HOLDER_DB"
	refuseEnv = "EJECTSAFE_HOLDER_REFUSE"
	holdRows  = 300
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == bench.ChildCommand {
		// `ejectsafe bench`'s memory children: this binary re-executed.
		os.Exit(bench.RunChild(os.Args[2:], os.Stdout))
	}
	if db := os.Getenv(holderEnv); db != "" {
		os.Exit(runHolder(db, os.Getenv(refuseEnv)))
	}
	if file := os.Getenv(writerEnv); file != "" {
		os.Exit(runWriter(file))
	}
	// Host logs of the tests' stores (and their holders') in a directory
	// of this run, not the user's cache.
	var hostLogs string
	if os.Getenv(store.HostDirEnv) == "" {
		if dir, err := os.MkdirTemp("", "ejectsafe-hostlogs-"); err == nil {
			os.Setenv(store.HostDirEnv, dir)
			hostLogs = dir
		}
	}
	code := m.Run()
	if hostLogs != "" {
		os.RemoveAll(hostLogs)
	}
	if binPath != "" { // the CLI built for drive_test.go
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// runHolder is an application holding a store with uncheckpointed rows
// until an eject releases it.
func runHolder(db, refuse string) int {
	opts := &store.Options{ManualCheckpoint: true}
	if refuse != "" {
		opts.OnEjectRequest = func(context.Context) error { return errors.New(refuse) }
	}
	if w := os.Getenv(waitEnv); w != "" {
		// "MINE|ALL,...": say this holder was asked, then release only
		// once every holder has been asked. ('|': no path has one, and
		// Windows paths have ':'.)
		mine, all, _ := strings.Cut(w, "|")
		opts.OnEjectRequest = func(ctx context.Context) error {
			if err := os.WriteFile(mine, nil, 0o644); err != nil {
				return err
			}
			for _, m := range strings.Split(all, ",") {
				for {
					if _, err := os.Stat(m); err == nil {
						break
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			return nil
		}
	}
	s, err := store.Open(db, opts)
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	d := s.DB()
	if _, err := d.Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		fmt.Println("error", err)
		return 2
	}
	for i := 0; i < holdRows; i++ {
		if _, err := d.Exec("INSERT INTO t(v) VALUES('held')"); err != nil {
			fmt.Println("error", err)
			return 2
		}
	}
	fmt.Println("ready", os.Getpid())
	for { // until the eject closes the store; Ping never checkpoints
		if err := d.Ping(); err != nil {
			fmt.Println("released:", err)
			// Exit at once, as an application may: the Store reports
			// ErrEjected only once the eject's answer is delivered.
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startHolder runs a holder process on db and waits until it is ready.
func startHolder(t *testing.T, db, refuse string) *exec.Cmd {
	t.Helper()
	return startHolderEnv(t, db, refuseEnv+"="+refuse)
}

// startHolderEnv is startHolder with more environment.
func startHolderEnv(t *testing.T, db string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), holderEnv+"="+db), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("holder: %q, %v", line, err)
	}
	return cmd
}

func exitCode(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within): // a hang detector, not a speed check
		t.Fatalf("holder did not exit")
		return -1
	}
}

func TestEject_holders(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "held.db")
	holder := startHolder(t, db, "")
	pid := strconv.Itoa(holder.Process.Pid)

	code, out, _ := runCmd(t, "check", dir)
	if code != 1 || !strings.Contains(out, "pid "+pid) {
		t.Fatalf("check with a live holder = %d; want 1 naming pid %s:\n%s", code, pid, out)
	}
	if code, out, _ := runCmd(t, "status", dir); code != 0 || !strings.Contains(out, "not checkpointed") || !strings.Contains(out, "pid "+pid) {
		t.Fatalf("status = %d:\n%s", code, out)
	}
	code, out, errs := runCmd(t, "eject", "--no-unmount", dir)
	if code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("eject --no-unmount = %d:\n%s%s", code, out, errs)
	}
	if c := exitCode(t, holder, 30*time.Second); c != 0 {
		t.Fatalf("holder exit %d after eject", c)
	}
	if code, out, _ := runCmd(t, "check", dir); usersSeen() && code != 0 {
		t.Fatalf("check after eject = %d:\n%s", code, out)
	} else if !usersSeen() && (code != 1 || strings.Contains(out, "pid "+pid) || !strings.Contains(out, cannotTell)) {
		t.Fatalf("check after eject = %d; want 1, no holder, only %q:\n%s", code, cannotTell, out)
	}
	// Everything the holder committed is in the file, for any reader.
	if got := cliRead(t, db, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != fmt.Sprintf("%d\nok", holdRows) {
		t.Fatalf("sqlite3 reads %q", got)
	}

	t.Run("refused", func(t *testing.T) {
		holder := startHolder(t, db, "a document is being saved")
		code, out, errs := runCmd(t, "eject", "--no-unmount", "--timeout", "10s", dir)
		if code != 1 || !strings.Contains(out+errs, "refused: a document is being saved") || !strings.Contains(errs, "pid "+strconv.Itoa(holder.Process.Pid)) {
			t.Fatalf("eject with a refusing holder = %d:\n%s%s", code, out, errs)
		}
		holder.Process.Kill()
	})

	t.Run("killed holder", func(t *testing.T) {
		holder := startHolder(t, db, "")
		holder.Process.Signal(syscall.SIGKILL)
		holder.Wait()
		code, out, _ := runCmd(t, "check", dir)
		want := 0
		if !usersSeen() {
			want = 1 // and only because it cannot tell
			if !strings.Contains(out, cannotTell) || strings.Contains(out, "live holder") {
				t.Fatalf("check after kill -9 = %d; want only %q:\n%s", code, cannotTell, out)
			}
		}
		if code != want || !strings.Contains(out, "stale") {
			t.Fatalf("check after kill -9 = %d; want %d with the lease reported stale:\n%s", code, want, out)
		}
		s, err := store.Open(db, nil) // recovers and takes the lease
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, found, err := lease.Find(dir)
		if err != nil || len(found) != 1 || found[0].Lease.PID != os.Getpid() {
			t.Fatalf("after Open: leases %+v, %v; want one, this process's", found, err)
		}
		var n int
		if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n < holdRows {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
}

// cliRead reads the database file alone with the stock sqlite3 shell.
func cliRead(t *testing.T, db, sql string) string {
	t.Helper()
	if _, _, err := stocktest.Lookup(); err != nil && stocktest.UnderWine() {
		return readAlone(t, db, sql)
	}
	bin := stocktest.Bin(t, "the independent read")
	out, err := exec.Command(bin, store.FileURI(db, "immutable=1"), sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func mounted(t *testing.T, mp string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == mp {
			return true
		}
	}
	return false
}
