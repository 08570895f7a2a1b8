package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ejectsafe/ejectsafe/layout"
	"github.com/ejectsafe/ejectsafe/store"
)

const (
	demoWriters = 4
	demoRows    = 1000 // per writer
)

// runDemo opens a store in DIR (default: a fresh temporary directory)
// and shows it at work (demo).
func runDemo(in *invocation) error {
	dir := ""
	if len(in.pos) == 1 {
		dir = in.pos[0]
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "ejectsafe-demo-")
		if err != nil {
			return err
		}
		dir = d
	}
	if err := demo(filepath.Join(dir, "demo.db"), in.stdout); err != nil {
		return problem(err)
	}
	return nil
}

func demo(path string, out io.Writer) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; give an empty directory", path)
	}
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	p("database: %s", path)
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true})
	if err != nil {
		return err
	}
	defer s.Close()
	db := s.DB()
	if _, err := db.Exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, writer INTEGER, body TEXT)"); err != nil {
		return err
	}
	ctx := context.Background()
	if err := s.Checkpoint(ctx); err != nil {
		return err
	}
	before, err := fileState(path)
	if err != nil {
		return err
	}
	p("opened; the WAL lives off the drive (mapped from a log on this computer's disk at the default durability, HostLog; in memory alone at Checkpoint); this demo checkpoints by hand")
	p("database file: %s", before)

	p("committing %d rows from %d goroutines, one transaction each...", demoWriters*demoRows, demoWriters)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, demoWriters)
	for w := 0; w < demoWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < demoRows; i++ {
				if _, err := db.Exec("INSERT INTO notes(writer, body) VALUES(?, ?)", w, fmt.Sprintf("note %d from writer %d", i, w)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	el := time.Since(start)
	p("  done in %v (%.0f commits/s)", el.Round(time.Millisecond), float64(demoWriters*demoRows)/el.Seconds())
	st := s.Stats()
	p("WAL off the drive: %s, of which not yet checkpointed: %s", bytesStr(st.WALBytes), bytesStr(st.DirtyBytes))
	mid, err := fileState(path)
	if err != nil {
		return err
	}
	p("database file: %s", mid)
	p("  unchanged by %d commits: %s", demoWriters*demoRows, yesNo(mid == before))
	side := sidecars(path)
	p("  -wal, -shm or -journal on disk: %s", side)

	start = time.Now()
	if err := s.Checkpoint(ctx); err != nil {
		return err
	}
	p("checkpoint: done in %v", time.Since(start).Round(time.Microsecond))
	after, err := fileState(path)
	if err != nil {
		return err
	}
	p("database file: %s", after)
	p("  changed by the checkpoint: %s", yesNo(after != mid))
	if err := s.Close(); err != nil {
		return err
	}

	s2, err := store.Open(path, nil)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer s2.Close()
	var n int
	var check string
	if err := s2.DB().QueryRow("SELECT count(*) FROM notes").Scan(&n); err != nil {
		return err
	}
	if err := s2.DB().QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
		return err
	}
	p("reopened fresh: %d rows read back (expected %d), integrity_check: %s", n, demoWriters*demoRows, check)
	if n != demoWriters*demoRows || check != "ok" || mid != before || after == mid || side != "none" {
		return errors.New("the demo's expectations did not hold (see above)")
	}
	return s2.Close()
}

// fileState describes the database file's bytes.
func fileState(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s, sha256 %x", bytesStr(int64(len(b))), sha256.Sum256(b)), nil
}

func sidecars(path string) string {
	var found []string
	for _, suf := range []string{layout.WALSuffix, layout.SharedMemorySuffix, layout.RollbackSuffix} {
		if _, err := os.Stat(path + suf); !errors.Is(err, fs.ErrNotExist) {
			found = append(found, filepath.Base(path+suf))
		}
	}
	if len(found) == 0 {
		return "none"
	}
	return strings.Join(found, ", ")
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
