package store

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var killRounds = flag.Int("kill.rounds", 20, "SIGKILLs in TestStore_killDuringCheckpoint")

const (
	killChildEnv = "EJECTSAFE_KILL_CHILD"
	killBatch    = 500  // rows per transaction
	killRowBytes = 1000 // bytes per row
	killPreload  = 16   // MiB of rows before the first round
)

// killChild is the process TestStore_killDuringCheckpoint kills: it
// commits batches and checkpoints in a loop, telling the parent (on stdout)
// when each checkpoint begins and ends.
func killChild(path string) int {
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	db := s.DB()
	insert := fmt.Sprintf("INSERT INTO t(v) SELECT randomblob(%d) FROM c", killRowBytes)
	cte := fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) ", killBatch)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() { // one batch and checkpoint per "go" from the parent
		if _, err := db.Exec(cte + insert); err != nil {
			fmt.Println("error", err)
			return 2
		}
		fmt.Println("begin")
		if err := s.Checkpoint(context.Background()); err != nil {
			fmt.Println("error", err)
			return 2
		}
		fmt.Println("end")
	}
	return 0
}

// TestStore_killDuringCheckpoint SIGKILLs a process that checkpoints a
// database of killPreload MiB and more, at seeded random moments weighted to
// fall inside checkpoints. Each reopen must give exactly the rows of the
// checkpoint before the kill or of the one in flight, intact.
func TestStore_killDuringCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < killPreload<<20/(killBatch*killRowBytes); i++ {
		mustExec(t, s.DB(), fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(v) SELECT randomblob(%d) FROM c", killBatch, killRowBytes))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rows := countRows(t, path)

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d (replay: the kill moments come from it)", seed)
	inside := 0
	for round := 0; round < *killRounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it run 0-3 checkpoints, then kill at a random moment, most
		// often while a checkpoint runs.
		lines := bufio.NewScanner(out)
		done, skip := 0, rng.Intn(3)
		fmt.Fprintln(in, "go")
		for lines.Scan() {
			line := lines.Text()
			if strings.HasPrefix(line, "error") {
				t.Fatalf("round %d (seed %d): child: %s", round, seed, line)
			}
			if line == "end" {
				done++
				fmt.Fprintln(in, "go")
			}
			if line == "begin" && done >= skip {
				if rng.Intn(4) > 0 {
					inside++
					time.Sleep(time.Duration(rng.Intn(30000)) * time.Microsecond)
				}
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()

		// Old state: the rows before this round plus `done` checkpointed
		// batches; new state: one batch more (the checkpoint in flight).
		got := countRows(t, path)
		old := rows + done*killBatch
		if got != old && got != old+killBatch {
			t.Fatalf("round %d (seed %d): %d rows; want %d (old) or %d (new)", round, seed, got, old, old+killBatch)
		}
		rows = got
		assertClean(t, path)
	}
	t.Logf("%d kills (%d aimed inside a checkpoint), database now %d rows", *killRounds, inside, rows)
}

// countRows opens the database with the store (running recovery), checks
// integrity and counts the rows of t.
func countRows(t *testing.T, path string) int {
	t.Helper()
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var check string
	if err := s.DB().QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// assertClean fails if anything but the database, its lock and its
// journal is left in the database's directory.
func assertClean(t *testing.T, path string) {
	t.Helper()
	names, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(path)
	for _, n := range names {
		switch name := n.Name(); {
		case name == base, name == base+lockSuffix, strings.HasPrefix(name, base+".ejectsafe-jrnl") && !strings.Contains(name, "tmp"):
		default:
			t.Errorf("left behind: %s", name)
		}
	}
}
