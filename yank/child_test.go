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
	"strings"
	"time"
	"unsafe"

	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/store"
)

// target is what a yank round pulls the drive under.
type target string

const (
	// targetStore is an ejectsafe store in its default mode
	// (CheckpointAuto): commits in memory, then store.Checkpoint, which
	// picks copy or in place per checkpoint.
	targetStore target = "store"
	// targetInPlace is the store with CheckpointInPlace forced: every
	// checkpoint that can go in place does (on fusefat a growing one
	// copies: it corrupts a file extended in place).
	targetInPlace target = "store-inplace"
	// targetCopy is the store with CheckpointCopy: every checkpoint a copy
	// renamed over the database, the behaviour before issue 11. Run only
	// with -yank.full or when -yank.targets names it.
	targetCopy target = "store-copy"
	// targetWAL is plain SQLite in WAL mode with synchronous=NORMAL:
	// commits, then PRAGMA wal_checkpoint(TRUNCATE).
	targetWAL target = "wal-normal"
	// targetDelete is plain SQLite with a rollback journal
	// (journal_mode=DELETE) and synchronous=FULL: each commit is durable.
	targetDelete target = "delete-full"
)

var targets = []target{targetStore, targetInPlace, targetCopy, targetWAL, targetDelete}

// isStore reports whether tgt is the store (its checks are assertions).
func (tgt target) isStore() bool {
	return tgt == targetStore || tgt == targetInPlace || tgt == targetCopy
}

// mode is the store's CheckpointMode for tgt.
func (tgt target) mode() store.CheckpointMode {
	switch tgt {
	case targetInPlace:
		return store.CheckpointInPlace
	case targetCopy:
		return store.CheckpointCopy
	}
	return store.CheckpointAuto
}

// byDefault reports whether tgt runs without -yank.targets naming it.
func (tgt target) byDefault() bool { return tgt != targetCopy || *flagFull }

// The child is this test binary run again with childEnv set to the
// target; it finds the database and the batch in the other variables.
const (
	childEnv    = "EJECTSAFE_YANK_CHILD"
	dbEnv       = "EJECTSAFE_YANK_DB"
	rowBytesEnv = "EJECTSAFE_YANK_ROW_BYTES"
)

// The child's protocol, one line each on stdout:
//
//	ready             opened; waiting for a batch on stdin
//	begin             a durability point starts: store.Checkpoint,
//	                  wal_checkpoint(TRUNCATE), or the commit itself
//	                  for delete-full; the batch before it is committed
//	end MICROS MODE   it returned success after MICROS; MODE is how the
//	                  store's checkpoint wrote (inplace or copy), "-" for
//	                  plain SQLite
//	error TEXT        something failed; the child exits
//	truncate0 NAME N  the store truncated NAME from N bytes to 0
//	log               the store: <db>-wal appeared (an in-place
//	                  checkpoint's redo log; watchLog)
//	unlog MICROS      it went, MICROS after it appeared
//
// Each line on stdin is one batch (batch.String): one transaction, and
// one durability point. So the parent knows exactly which batches the
// completed durability points hold before it pulls the drive.

// batch is one transaction of the workload, chosen by the parent. grow
// appends n rows at the end of the table, so the database file grows;
// churn rewrites count rows from id first every stride ids, spread over
// the whole file, so the checkpoint after it has dirty pages throughout
// the database and the size stays. Every row a batch writes gets g =
// num, the batch's number (never reused in a phase): the table's sig
// then tells exactly which batches it holds.
type batch struct {
	churn                bool
	n                    int // grow: rows appended
	first, stride, count int // churn: the ids first, first+stride, ... (count of them)
	num                  int
}

func (b batch) String() string {
	if b.churn {
		return fmt.Sprintf("churn %d %d %d %d", b.first, b.stride, b.count, b.num)
	}
	return fmt.Sprintf("grow %d %d", b.n, b.num)
}

// parseBatch reads a batch line.
func parseBatch(line string) (batch, error) {
	var b batch
	var err error
	switch f := strings.Fields(line); {
	case len(f) == 3 && f[0] == "grow":
		_, err = fmt.Sscan(line[len("grow"):], &b.n, &b.num)
	case len(f) == 5 && f[0] == "churn":
		b.churn = true
		_, err = fmt.Sscan(line[len("churn"):], &b.first, &b.stride, &b.count, &b.num)
	default:
		err = fmt.Errorf("bad batch line %q", line)
	}
	return b, err
}

// sql is the batch's one statement. The churn selects its rows by
// primary key (no scan: a 1 GiB table is not read whole per batch).
func (b batch) sql(rowBytes int) string {
	if b.churn {
		return fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT %d UNION ALL SELECT i+%d FROM c LIMIT %d) UPDATE t SET g = %d, v = randomblob(%d) WHERE id IN c",
			b.first, b.stride, b.count, b.num, rowBytes)
	}
	return fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(g, v) SELECT %d, randomblob(%d) FROM c",
		b.n, b.num, rowBytes)
}

func runChild(tgt string) int {
	path := os.Getenv(dbEnv)
	rowBytes, err := strconv.Atoi(os.Getenv(rowBytesEnv))
	if path == "" || err != nil {
		fmt.Println("error bad child environment")
		return 2
	}
	switch tgt := target(tgt); {
	case tgt.isStore():
		err = storeChild(tgt, path, rowBytes)
	case tgt == targetWAL, tgt == targetDelete:
		err = plainChild(tgt, path, rowBytes)
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

func storeChild(tgt target, path string, rowBytes int) error {
	fsys := fsFor(filepath.Dir(path), func(name string, size int64) { fmt.Println("truncate0", name, size) })
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsys, Logger: quiet, CheckpointMode: tgt.mode()})
	if err != nil {
		return err
	}
	if err := watchLog(path); err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		b, err := parseBatch(in.Text())
		if err != nil {
			return err
		}
		if _, err := s.DB().Exec(b.sql(rowBytes)); err != nil {
			return err
		}
		fmt.Println("begin")
		t0 := time.Now()
		if err := s.Checkpoint(context.Background()); err != nil {
			return err
		}
		d := time.Since(t0)
		mode := "copy"
		if s.Stats().LastCheckpointMode == store.CheckpointInPlace {
			mode = "inplace"
		}
		fmt.Println("end", d.Microseconds(), mode)
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

func plainChild(tgt target, path string, rowBytes int) error {
	db, err := openPlain(tgt, path)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		b, err := parseBatch(in.Text())
		if err != nil {
			return err
		}
		if tgt == targetDelete {
			fmt.Println("begin")
		}
		t0 := time.Now()
		if _, err := db.Exec(b.sql(rowBytes)); err != nil {
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
		fmt.Println("end", time.Since(t0).Microseconds(), "-")
	}
	return db.Close()
}

// watchLog prints "log" when the database's -wal comes alive (created,
// or a header written into the retired file an earlier checkpoint left)
// and "unlog MICROS" when it is retired or removed (MICROS after it came
// alive): the life of an in-place checkpoint's redo log, so that the
// parent can pull inside it (momentLog). inotify sees the store's own
// creates, writes and removes on a FUSE mount: they go through this
// kernel's VFS. A write is told from a retirement by the header it left
// (liveLog), read back through the mount.
func watchLog(path string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return fmt.Errorf("inotify: %w", err)
	}
	want := filepath.Base(path) + "-wal"
	go func() {
		var since time.Time
		alive := func() {
			if since.IsZero() {
				since = time.Now()
				fmt.Println("log")
			}
		}
		gone := func() {
			if !since.IsZero() {
				fmt.Println("unlog", time.Since(since).Microseconds())
				since = time.Time{}
			}
		}
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return // the process ends with the pull
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				off += unix.SizeofInotifyEvent + int(ev.Len)
				if name != want {
					continue
				}
				switch {
				case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
					alive()
				case ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
					gone()
				case ev.Mask&unix.IN_MODIFY != 0 && since.IsZero():
					if liveLog(path + "-wal") {
						alive()
					}
				case ev.Mask&unix.IN_MODIFY != 0:
					if !liveLog(path + "-wal") {
						gone()
					}
				}
			}
		}
	}()
	return nil
}
