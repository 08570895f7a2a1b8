//go:build linux

package yank

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/store"
)

const (
	hostLogChildEnv = "EJECTSAFE_YANK_HOSTLOG_CHILD"
	hostLogDirEnv   = "EJECTSAFE_YANK_HOSTLOG_DIR"
)

// hostLogChild is the application of TestYank_hostLog, at Durability
// HostLog with its log in EJECTSAFE_YANK_HOSTLOG_DIR: "go" commits one
// row and answers "ack N" once the commit returned (or "fail ..."),
// "ckpt" checkpoints ("ckpt ok" or "ckpt fail ...").
func hostLogChild(path string) int {
	s, err := store.Open(path, &store.Options{
		ManualCheckpoint: true, FS: fsFor(filepath.Dir(path), nil), Logger: quiet,
		Durability: store.HostLog, HostDir: os.Getenv(hostLogDirEnv),
	})
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	db := s.DB()
	if _, err := db.Exec("CREATE TABLE h(i INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		fmt.Println("error", err)
		return 2
	}
	if err := s.Checkpoint(context.Background()); err != nil {
		fmt.Println("error", err)
		return 2
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	n := 0
	for in.Scan() {
		switch in.Text() {
		case "go":
			if _, err := db.Exec("INSERT INTO h VALUES(?, randomblob(3000))", n+1); err != nil {
				fmt.Println("fail", strings.ReplaceAll(err.Error(), "\n", " "))
				continue
			}
			n++
			fmt.Println("ack", n)
		case "ckpt":
			if err := s.Checkpoint(context.Background()); err != nil {
				fmt.Println("ckpt fail", strings.ReplaceAll(err.Error(), "\n", " "))
				continue
			}
			fmt.Println("ckpt ok")
		}
	}
	return 0
}

// TestYank_hostLog is issue 13's yank acceptance on real exFAT and FAT:
// the app commits (some checkpointed, more not), the drive is pulled,
// the app commits on (into its host log) and is killed with SIGKILL; the
// drive is plugged back and a new process opens the database: every
// acknowledged commit is there, not only the checkpointed ones, and the
// stock sqlite3 CLI agrees once that Store closed.
func TestYank_hostLog(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	for _, kind := range kinds() {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: volumeMiB(kind, phase{volumeMiB: 64})})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(vol.Mount, dbName)
			hostDir := filepath.Join(t.TempDir(), "hostlogs")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), hostLogChildEnv+"="+path, hostLogDirEnv+"="+hostDir)
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			sc := bufio.NewScanner(stdout)
			next := func() string {
				t.Helper()
				done := make(chan bool, 1)
				go func() { done <- sc.Scan() }()
				select {
				case ok := <-done:
					if !ok {
						t.Fatal("child exited")
					}
				case <-time.After(lineTimeout):
					t.Fatalf("no line from the child in %v", lineTimeout)
				}
				l := sc.Text()
				if strings.HasPrefix(l, "error") {
					t.Fatalf("child: %s", l)
				}
				return l
			}
			say := func(s string) string {
				fmt.Fprintln(stdin, s)
				return next()
			}
			if l := next(); l != "ready" {
				t.Fatalf("child: %s", l)
			}
			acked, checkpointed, afterPull := 0, 0, 0
			commit := func() {
				if l := say("go"); strings.HasPrefix(l, "ack") {
					acked++
				} else {
					t.Logf("commit: %s", l)
				}
			}
			for i := 0; i < 10; i++ {
				commit()
			}
			if l := say("ckpt"); l != "ckpt ok" {
				t.Fatalf("checkpoint: %s", l)
			}
			checkpointed = acked
			for i := 0; i < 20; i++ {
				commit()
			}
			if err := vol.Pull(); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				before := acked
				commit()
				afterPull += acked - before
			}
			cmd.Process.Kill() // the app dies while the drive is away
			cmd.Wait()
			if err := vol.Remount(); err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsFor(vol.Mount, nil), Logger: quiet, HostDir: hostDir})
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.DB().QueryRow("SELECT count(*) FROM h").Scan(&n); err != nil {
				t.Fatal(err)
			}
			rep := s.Recovery()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d commits acknowledged (%d checkpointed, %d after the pull); %d rows after the re-plug; host log %q", acked, checkpointed, afterPull, n, rep.HostLog)
			if n != acked {
				t.Errorf("%d rows after the re-plug, want %d (every acknowledged commit; %d were checkpointed); host log %q %v", n, acked, checkpointed, rep.HostLog, rep.HostLogErr)
			}
			if out, err := sqlite3CLI(path, "SELECT count(*) FROM h"); err != nil || strings.TrimSpace(out) != fmt.Sprint(acked) {
				t.Errorf("stock sqlite3: %q, %v; want %d", out, err, acked)
			}
		})
	}
}
