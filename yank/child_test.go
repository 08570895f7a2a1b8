//go:build linux

package yank

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/store"
)

// target is what a yank round pulls the drive under.
type target string

const (
	// targetStore is an ejectsafe store: commits in memory, then
	// store.Checkpoint.
	targetStore target = "store"
	// targetWAL is plain SQLite in WAL mode with synchronous=NORMAL:
	// commits, then PRAGMA wal_checkpoint(TRUNCATE).
	targetWAL target = "wal-normal"
	// targetDelete is plain SQLite with a rollback journal
	// (journal_mode=DELETE) and synchronous=FULL: each commit is durable.
	targetDelete target = "delete-full"
)

var targets = []target{targetStore, targetWAL, targetDelete}

// The child is this test binary run again with childEnv set to the
// target; it finds the database and the batch in the other variables.
const (
	childEnv    = "EJECTSAFE_YANK_CHILD"
	dbEnv       = "EJECTSAFE_YANK_DB"
	batchEnv    = "EJECTSAFE_YANK_BATCH"
	rowBytesEnv = "EJECTSAFE_YANK_ROW_BYTES"
)

// The child's protocol, one line each on stdout:
//
//	ready             opened; waiting for "go" on stdin
//	begin             a durability point starts: store.Checkpoint,
//	                  wal_checkpoint(TRUNCATE), or the commit itself
//	                  for delete-full; the batch before it is committed
//	end MICROS        it returned success after MICROS
//	error TEXT        something failed; the child exits
//	truncate0 NAME N  the store truncated NAME from N bytes to 0
//
// Each "go" line on stdin runs one batch: one transaction of batch rows,
// and one durability point. So the parent knows exactly how many
// durability points completed before it pulls the drive.

func runChild(tgt string) int {
	path := os.Getenv(dbEnv)
	batch, err1 := strconv.Atoi(os.Getenv(batchEnv))
	rowBytes, err2 := strconv.Atoi(os.Getenv(rowBytesEnv))
	if path == "" || err1 != nil || err2 != nil {
		fmt.Println("error bad child environment")
		return 2
	}
	var err error
	switch target(tgt) {
	case targetStore:
		err = storeChild(path, batch, rowBytes)
	case targetWAL, targetDelete:
		err = plainChild(target(tgt), path, batch, rowBytes)
	default:
		err = fmt.Errorf("unknown target %q", tgt)
	}
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	return 0
}

// quiet discards what the store logs at Open about the filesystem (FUSE,
// container, VM): the same lines for every round.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// insertBatch is one transaction of n rows of rowBytes random bytes.
func insertBatch(n, rowBytes int) string {
	return fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(v) SELECT randomblob(%d) FROM c", n, rowBytes)
}

func storeChild(path string, batch, rowBytes int) error {
	fsys := fsFor(filepath.Dir(path), func(name string, size int64) { fmt.Println("truncate0", name, size) })
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsys, Logger: quiet})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if _, err := s.DB().Exec(insertBatch(batch, rowBytes)); err != nil {
			return err
		}
		fmt.Println("begin")
		t0 := time.Now()
		if err := s.Checkpoint(context.Background()); err != nil {
			return err
		}
		fmt.Println("end", time.Since(t0).Microseconds())
	}
	return s.Close()
}

// openPlain opens plain SQLite (mattn, default VFS) on path in the
// target's journal mode and synchronous level, on one connection so the
// pragmas hold for every statement.
func openPlain(tgt target, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	mode, sync := "wal", "1" // NORMAL
	if tgt == targetDelete {
		mode, sync = "delete", "2" // FULL
	}
	var got string
	if err := db.QueryRow("PRAGMA journal_mode=" + mode).Scan(&got); err != nil || got != mode {
		db.Close()
		return nil, fmt.Errorf("journal_mode=%s answered %q: %v", mode, got, err)
	}
	if _, err := db.Exec("PRAGMA synchronous=" + sync); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.QueryRow("PRAGMA synchronous").Scan(&got); err != nil || got != sync {
		db.Close()
		return nil, fmt.Errorf("synchronous is %q, want %s: %v", got, sync, err)
	}
	return db, nil
}

func plainChild(tgt target, path string, batch, rowBytes int) error {
	db, err := openPlain(tgt, path)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if tgt == targetDelete {
			fmt.Println("begin")
		}
		t0 := time.Now()
		if _, err := db.Exec(insertBatch(batch, rowBytes)); err != nil {
			return err
		}
		if tgt == targetWAL {
			fmt.Println("begin")
			t0 = time.Now()
			var busy, logFrames, done int
			if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
				return err
			}
			if busy != 0 {
				return fmt.Errorf("wal_checkpoint(TRUNCATE) busy (%d, %d, %d)", busy, logFrames, done)
			}
		}
		fmt.Println("end", time.Since(t0).Microseconds())
	}
	return db.Close()
}
