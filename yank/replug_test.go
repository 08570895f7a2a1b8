//go:build linux

package yank

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/store"
)

const (
	replugChildEnv = "EJECTSAFE_YANK_REPLUG_CHILD"
	replugBatch    = 256 // rows per batch, of rowBytes each
	// How long the child keeps retrying a checkpoint after the drive came
	// back: a reattach needs the store's next automatic probe or retry.
	replugRetry = 60 * time.Second
)

// replugChild is the application of TestYank_replug: it lives through
// the pulls. Per "go" line it commits a batch and checkpoints ("begin",
// "end"); a checkpoint that fails because the drive is away is answered
// "away" and retried on "retry" until it succeeds; "quit" closes the
// store.
func replugChild(path string) int {
	fsys := fsFor(filepath.Dir(path), func(name string, size int64) { fmt.Println("truncate0", name, size) })
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsys, Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	fmt.Println("ready")
	ckpt := func() {
		fmt.Println("begin")
		if err := s.Checkpoint(context.Background()); err != nil {
			if errors.Is(err, store.ErrDriveLost) || errors.Is(err, store.ErrCheckpoint) {
				fmt.Println("away", strings.ReplaceAll(err.Error(), "\n", " "))
				return
			}
			fmt.Println("error", err)
			return
		}
		fmt.Println("end", s.State().Reattaches)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "go":
			if _, err := s.DB().Exec(insertBatch(replugBatch, rowBytes)); err != nil {
				fmt.Println("error", err)
				continue
			}
			ckpt()
		case "retry":
			ckpt()
		case "quit":
			if err := s.Close(); err != nil {
				fmt.Println("error close:", err)
				return 2
			}
			fmt.Println("closed")
			return 0
		}
	}
	return 0
}

// TestYank_replug pulls the drive under a process that commits and
// checkpoints, at seeded random moments (inside a checkpoint 7 times in
// 10), and plugs it back while the process lives: the store must
// reattach by itself, and after its next checkpoint the drive must hold
// every row it committed, before and after the pull (the oracle of
// TestYank, with the last completed checkpoint being the one after the
// re-plug): integrity_check ok through the store and through the stock
// sqlite3 CLI, nothing left behind. 3 pulls per filesystem by default,
// 30 with -yank.full.
func TestYank_replug(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	pulls := 3
	if *flagFull {
		pulls = 30
	}
	if *flagPulls > 0 {
		pulls = *flagPulls
	}
	for _, kind := range kinds() {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			rs := subSeed(t.Name())
			rng := rand.New(rand.NewSource(rs))
			t.Logf("seed %d (replay: go test ./yank -count=1 -v -run '^TestYank_replug$/^%s$' -yank.seed=%d)", rs, kind, seed())
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: volumeMiB(kind, phase{volumeMiB: 64})})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(vol.Mount, dbName)
			pre := filepath.Join(t.TempDir(), "preload.db")
			rows := makePreload(t, pre, 1)
			b, err := os.ReadFile(pre)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := vol.Remount(); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), replugChildEnv+"="+path)
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
			lines := make(chan string, 64)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var seen []string
			next := func() string {
				t.Helper()
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("child exited; lines %q", seen)
					}
					seen = append(seen, l)
					if strings.HasPrefix(l, "error") || strings.HasPrefix(l, "truncate0") {
						t.Fatalf("child: %s (seed %d)", l, rs)
					}
					return l
				case <-time.After(lineTimeout):
					t.Fatalf("no line from the child in %v; lines %q", lineTimeout, seen)
				}
				return ""
			}
			send := func(s string) {
				if _, err := fmt.Fprintln(stdin, s); err != nil {
					t.Fatal(err)
				}
			}
			if l := next(); l != "ready" {
				t.Fatalf("child: %s", l)
			}
			for round := 0; round < pulls; round++ {
				// A batch or two first, so that the database is the
				// store's own.
				for i := rng.Intn(2); i >= 0; i-- {
					send("go")
					next() // begin
					if l := next(); !strings.HasPrefix(l, "end") {
						t.Fatalf("round %d: %s", round, l)
					}
					rows += replugBatch
				}
				inside := rng.Intn(10) < 7
				delay := time.Duration(rng.Int63n(int64(40 * time.Millisecond)))
				send("go")
				rows += replugBatch // committed before the checkpoint begins
				if inside {
					next() // begin
					time.Sleep(delay)
				} else {
					next()
					next() // end
				}
				if err := vol.Pull(); err != nil {
					t.Fatal(err)
				}
				if err := vol.Remount(); err != nil {
					t.Fatal(err)
				}
				// Drain what the child said about the pulled checkpoint,
				// then retry until it lands.
				deadline := time.Now().Add(replugRetry)
				landed := false
				if inside {
					if l := next(); strings.HasPrefix(l, "end") {
						landed = true // it finished before the pull
					}
				}
				for !landed {
					if time.Now().After(deadline) {
						t.Fatalf("round %d (inside %v, delay %v): the store did not reattach in %v; lines %q", round, inside, delay, replugRetry, seen[max(0, len(seen)-6):])
					}
					time.Sleep(200 * time.Millisecond)
					send("retry")
					next() // begin
					landed = strings.HasPrefix(next(), "end")
				}
				t.Logf("round %d: pulled %s (delay %v), plugged back, checkpointed: %s", round, map[bool]string{true: "inside a checkpoint", false: "idle"}[inside], delay, seen[len(seen)-1])
			}
			send("quit")
			if l := next(); l != "closed" {
				t.Fatalf("child: %s", l)
			}
			cmd.Wait()
			got, problems, _, recovery := verifyStore(path)
			if got != rows {
				problems = append(problems, fmt.Sprintf("%d rows; want %d, every row committed", got, rows))
			}
			if len(problems) > 0 {
				t.Errorf("FAIL yank replug seed=%d kind=%s: %s; recovery: %s", rs, kind, strings.Join(problems, "; "), recovery)
			}
			t.Logf("%s: %d pulls with the app alive, %d rows, all durable; %s", kind, pulls, rows, strconv.Quote(recovery))
		})
	}
}
