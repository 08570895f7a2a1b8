//go:build linux

package yank

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/store"
)

// roundResult is what a round knows once the child is dead.
type roundResult struct {
	round    int
	decision string
	st       *state
	states   []model // states[i]: the table after the round's first i batches
	sent     []batch
	took     []string // how long each step of the round took (lap)
}

// lap records the time since *since as step's and restarts it.
func (res *roundResult) lap(step string, since time.Time) time.Time {
	now := time.Now()
	res.took = append(res.took, fmt.Sprintf("%s %v", step, now.Sub(since).Round(time.Millisecond)))
	return now
}

// durable is the table as of the last completed durability point.
func (res *roundResult) durable() model { return res.states[res.st.done] }

// match is the index in states of the state whose sig is got, or -1.
func (res *roundResult) match(got sig) int {
	for k := len(res.states) - 1; k >= 0; k-- {
		if res.states[k].sig() == got {
			return k
		}
	}
	return -1
}

// want says which states a store may show after the pull: the last
// completed durability point's, or the one in flight's.
func (res *roundResult) want() string {
	w := fmt.Sprintf("%v (the last completed checkpoint)", res.durable().sig())
	if res.st.inflight {
		w += fmt.Sprintf(" or %v (the one in flight: %s)", res.states[res.st.done+1].sig(), res.sent[res.st.done])
	} else {
		w += "; none was in flight"
	}
	return w
}

// allowed reports whether a store may show got (want).
func (res *roundResult) allowed(got sig) bool {
	k := res.match(got)
	return k == res.st.done || k == res.st.done+1 && res.st.inflight
}

// makePreload builds the starting database on the host with plain
// SQLite (rollback journal), mib MiB of rows, and returns its rows. Each
// row's g is 0 (see batch).
func makePreload(t *testing.T, path string, mib int) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(tableSQL); err != nil {
		t.Fatal(err)
	}
	const per = 1000
	rows := mib << 20 / rowBytes
	for n := 0; n < rows; n += per {
		if _, err := db.Exec(insertBatch(min(per, rows-n), rowBytes)); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// checkStore checks the drive after a pull under the store: the rows are
// those of the last completed checkpoint or of the one in flight,
// integrity_check is ok through the store and through the stock sqlite3
// CLI, recovery leaves nothing behind, and fsck after recovery and a
// clean unmount names none of our files. It reports whether all held.
func (r *runner) checkStore(res *roundResult) bool {
	t := r.t
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(res.st.trunc0) > 0 {
		add("the store truncated a file with data to size 0, which fusefat corrupts: %q", res.st.trunc0)
	}
	lap := time.Now()
	pulled, err := r.vol.Fsck()
	if err != nil {
		t.Fatalf("Fsck after Pull (seed %d round %d): %v", r.seed, res.round, err)
	}
	if err := r.vol.Remount(); err != nil {
		t.Fatalf("Remount (seed %d round %d): %v", r.seed, res.round, err)
	}
	lap = res.lap("fsck and mount", lap)
	// The stock sqlite3 shell first, before store.Open recovers anything,
	// as on a machine without ejectsafe: it must show the same states.
	stock, log := r.stockBeforeOpen(res)
	if stock != "" {
		add("%s", stock)
	}
	lap = res.lap("stock shell", lap)
	got, verr, hidden, recovery := verifyStoreSig(r.path)
	lap = res.lap("store", lap)
	rows := got.rows
	problems = append(problems, verr...)
	var newHidden []string
	for _, h := range hidden {
		if !r.hidden[h] {
			r.hidden[h] = true
			newHidden = append(newHidden, h)
		}
	}
	record(r.kind, r.tgt, func(tl *tally) {
		tl.hidden += len(newHidden)
		if log {
			tl.logs++
		}
	})
	if rows >= 0 && !res.allowed(got) {
		add("the store reads %v (rows|sum(g)|sum(g*id)); want %s", got, res.want())
	}
	if err := r.unmount(); err != nil {
		t.Fatalf("Unmount (seed %d round %d, after: %s; %q): %v", r.seed, res.round, recovery, problems, err)
	}
	after, err := r.vol.Fsck()
	if err != nil {
		t.Fatalf("Fsck (seed %d round %d): %v", r.seed, res.round, err)
	}
	if ours := fsckOurs(after.Output); len(ours) > 0 {
		add("fsck after recovery and a clean unmount names our files: %q", ours)
	}
	if err := r.vol.Remount(); err != nil {
		t.Fatalf("Remount (seed %d round %d): %v", r.seed, res.round, err)
	}
	res.lap("unmount, fsck, mount", lap)
	t.Logf("round %d (%s): took %s; batches %q, pulled with %d checkpoints done (%q, %v), in flight %v, redo log on the drive %v; read %v, want %s; %s; new .fuse_hidden files: %q; fsck after pull: %s; after recovery: %s",
		res.round, res.decision, strings.Join(res.took, ", "), res.sent, res.st.done, res.st.modes, res.st.took, res.st.inflight, log, got, res.want(), recovery, newHidden, fsckSummary(pulled), fsckSummary(after))
	if len(problems) > 0 {
		t.Errorf("FAIL yank seed=%d kind=%s target=%s round=%d (%s): %s\nchild lines: %q\nrecovery: %s\nfsck after the pull (%s):\n%s\nfsck after recovery (%s):\n%s\nreplay (the pull moment is a delay, so timing may differ): %s",
			r.seed, r.kind, r.tgt, res.round, res.decision, strings.Join(problems, "; "), res.st.lines, recovery,
			pulled.Command, pulled.Output, after.Command, after.Output, r.replay(res.round))
	}
	if k := res.match(got); rows < 0 || k < 0 {
		r.install() // start again from the preload
	} else {
		r.model = res.states[k]
	}
	return len(problems) == 0
}

// stockBeforeOpen copies the database and the -wal and -journal beside
// it (those present) from the drive to the host, and runs the stock
// sqlite3 shell on the copy (which replays a -wal, rolls back a hot
// journal): what a machine without ejectsafe would see, the drive itself
// untouched. It returns what is wrong ("" when the shell shows integrity
// ok and a state the store may show: res.want) and whether a -wal was on
// the drive that SQLite reads something from (a pull inside an in-place
// checkpoint, after its redo log was written and before it was retired:
// liveLog).
func (r *runner) stockBeforeOpen(res *roundResult) (problem string, log bool) {
	dir := r.stock
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Sprintf("stock CLI: %v", err), false
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Sprintf("stock CLI: %v", err), false
	}
	var copied []string
	for _, suffix := range []string{"", "-wal", "-journal"} {
		src := r.path + suffix
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := copyFile(filepath.Join(dir, dbName+suffix), src); err != nil {
			return fmt.Sprintf("stock CLI: copying %s from the drive: %v", src, err), false
		}
		copied = append(copied, dbName+suffix)
		log = log || suffix == "-wal" && liveLog(src)
	}
	out, err := stockCLI("file:"+filepath.Join(dir, dbName), "PRAGMA integrity_check; "+sigSQL+";")
	switch {
	case err != nil:
		return fmt.Sprintf("stock sqlite3 before store.Open, on a copy of %q: %v", copied, err), log
	case out == "": // no CLI here: said loudly once
		return "", log
	}
	check, read, _ := strings.Cut(out, "\n")
	var got sig
	if _, err := fmt.Sscanf(read, "%d|%d|%d", &got.rows, &got.sumG, &got.sumGID); err != nil || check != "ok" || !res.allowed(got) {
		return fmt.Sprintf("stock sqlite3 before store.Open, on a copy of %q, answered %q; want ok and %s", copied, out, res.want()), log
	}
	return "", log
}

// verifyStore is verifyStoreSig's rows.
func verifyStore(path string) (rows int, problems, hidden []string, recovery string) {
	got, problems, hidden, recovery := verifyStoreSig(path)
	return got.rows, problems, hidden, recovery
}

// verifyStoreSig opens path with the store (running recovery) and checks
// it; then the sqlite3 CLI reads the file alone and must read the same.
// got.rows is -1 when the store could not open it or read the table.
//
// The CLI reads a copy of the file on the host, made in one sequential
// pass: the same bytes, but fusefat walks a file's cluster chain from its
// start on every read, so SQLite's page-by-page reads of a 4 MiB database
// through it take seconds (with other suites on the machine, 5-8 s per
// pull, as long as the rest of the round).
func verifyStoreSig(path string) (got sig, problems, hidden []string, recovery string) {
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	fsys := fsFor(filepath.Dir(path), func(name string, size int64) {
		add("recovery truncated %s from %d bytes to 0, which fusefat corrupts", name, size)
	})
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsys, Logger: quiet})
	if err != nil {
		add("store.Open (recovery): %v", err)
		return sig{rows: -1}, problems, nil, ""
	}
	recovery = s.Recovery().String()
	left, hidden := leftovers(path)
	problems = append(problems, left...)
	if check := integrity(s.DB()); check != "ok" {
		add("integrity_check through the store: %s", check)
	}
	if err := s.DB().QueryRow(sigSQL).Scan(&got.rows, &got.sumG, &got.sumGID); err != nil {
		add("reading the table through the store: %v", err)
		got.rows = -1
	}
	if err := s.Close(); err != nil {
		add("store Close: %v", err)
		s.Abandon() // nothing was written: release the files
	}
	// Remove the hidden files once counted: they are database-sized, and
	// left to pile up they fill the volume within a few dozen pulls.
	for _, h := range hidden {
		if err := os.Remove(filepath.Join(filepath.Dir(path), h)); err != nil {
			add("removing %s: %v", h, err)
		}
	}
	if out, err := sqlite3CLICopy(path, "PRAGMA integrity_check; "+sigSQL+";"); err != nil {
		add("sqlite3 CLI: %v", err)
	} else if want := "ok\n" + got.String(); out != want && out != "" {
		add("sqlite3 CLI (immutable=1, on a copy of the database file) answered %q, want %q", out, want)
	}
	return got, problems, hidden, recovery
}

// integrity runs PRAGMA integrity_check and joins its rows.
func integrity(db *sql.DB) string {
	rs, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return err.Error()
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			return err.Error()
		}
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		out = append(out, err.Error())
	}
	return strings.Join(out, "; ")
}

// leftovers lists what should not be next to the database once
// recovery ran: anything but the database, its lock, its checkpoint
// journal, a retired redo log and its lease (next to it, or in the
// volume's lease directory). Files named .fuse_hidden* are returned apart in hidden:
// see hiddenNote.
func leftovers(path string) (problems, hidden []string) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	names, err := os.ReadDir(dir)
	if err != nil {
		return []string{fmt.Sprintf("listing %s: %v", dir, err)}, nil
	}
	for _, n := range names {
		switch name := n.Name(); {
		case name == base, name == base+".ejectsafe-lock", name == base+".ejectsafe-jrnl", name == base+lease.FallbackSuffix:
		case name == base+"-wal" && !liveLog(filepath.Join(dir, name)):
			// An in-place checkpoint's redo log, retired (a header of
			// zeros) and kept for the next one until the store's Close:
			// SQLite reads it as an empty WAL. A live one is left over.
		case name == strings.Split(lease.DirName, "/")[0] && n.IsDir():
			problems = append(problems, leaseLeftovers(filepath.Join(dir, lease.DirName))...)
		case strings.HasPrefix(name, ".fuse_hidden"):
			hidden = append(hidden, name)
		default:
			problems = append(problems, "left behind after recovery: "+name)
		}
	}
	return problems, hidden
}

// leaseLeftovers lists temporary files in the lease directory.
func leaseLeftovers(dir string) []string {
	names, err := os.ReadDir(dir)
	if err != nil {
		return []string{fmt.Sprintf("listing %s: %v", dir, err)}
	}
	var out []string
	for _, n := range names {
		if strings.Contains(n.Name(), ".tmp") {
			out = append(out, "left behind after recovery: "+filepath.Join(lease.DirName, n.Name()))
		}
	}
	return out
}

// hiddenNote explains .fuse_hidden files. libfuse's high-level API,
// which exfat-fuse and fusefat use, does not unlink or replace a file
// that is still open: it renames it to .fuse_hiddenNNNN and unlinks that
// when the file is closed. A checkpoint renames its copy over the
// database while the old database is open (it serves reads until the
// new one is open), so for a moment the old database lives on as a
// hidden file. A pull in that moment (before the unlink is durable)
// leaves it on the drive for good: a database-sized file no one will
// remove. The kernel's own exfat and vfat drivers do not do this.
const hiddenNote = "left by pulls: old databases libfuse hid (renamed to .fuse_hidden*) because they were open when the checkpoint renamed its copy over them"

var cliMissing sync.Once

// sqlite3CLI runs the stock sqlite3 shell on the database file alone
// (immutable=1: no locks, no -wal, no -shm, no journal). Without the CLI
// it returns "" and no error, after one loud line; in CI that is an
// error.
func sqlite3CLI(path, sql string) (string, error) {
	return stockCLI("file:"+path+"?immutable=1", sql)
}

// sqlite3CLICopy is sqlite3CLI on a copy of path on the host (see
// verifyStoreSig for why).
func sqlite3CLICopy(path, sql string) (string, error) {
	dir, err := os.MkdirTemp("", "yank-stock-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, filepath.Base(path))
	if err := copyFile(cp, path); err != nil {
		return "", fmt.Errorf("copying %s from the drive: %w", path, err)
	}
	return sqlite3CLI(cp, sql)
}

// stockCLI runs the stock sqlite3 shell on uri, as sqlite3CLI.
func stockCLI(uri, sql string) (string, error) {
	bin, fatal, err := stocktest.Lookup()
	if err != nil {
		if fatal {
			return "", fmt.Errorf("sqlite3 CLI missing in CI: %w", err)
		}
		cliMissing.Do(func() {
			fmt.Fprintln(os.Stderr, "SKIP LOUDLY: yank: the stock sqlite3 CLI is not installed (apt-get install sqlite3); independent-reader check not run")
		})
		return "", nil
	}
	out, err := exec.Command(bin, uri, sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sqlite3 %q: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// checkPlain counts the outcome of a pull under plain SQLite: malformed
// (it does not open, integrity_check is not ok, or it holds a state no
// durability point made), lost (a state older than the last completed
// durability point: a wal_checkpoint(TRUNCATE), or a commit with
// synchronous=FULL), or ok. A malformed database is replaced by the
// preload.
func (r *runner) checkPlain(res *roundResult) {
	t := r.t
	pulled, err := r.vol.Fsck()
	if err != nil {
		t.Fatalf("Fsck after Pull (seed %d round %d): %v", r.seed, res.round, err)
	}
	if err := r.vol.Remount(); err != nil {
		t.Fatalf("Remount (seed %d round %d): %v", r.seed, res.round, err)
	}
	got, detail := verifyPlain(r.path)
	k := res.match(got)
	outcome := "ok"
	switch {
	case res.st.preErr:
		outcome, detail = "errored", fmt.Sprintf("SQLite failed before the pull: %q", res.st.errors)
	case detail != "":
		outcome = "malformed"
	case k < 0:
		outcome, detail = "malformed", fmt.Sprintf("%v, a state no batch made", got)
	case k > res.st.done+1 || k > res.st.done && !res.st.inflight:
		outcome, detail = "malformed", fmt.Sprintf("%v, a batch no durability point finished", got)
	case k < res.st.done:
		outcome = "lost"
	}
	named := len(fsckOurs(pulled.Output)) > 0
	record(r.kind, r.tgt, func(tl *tally) {
		switch outcome {
		case "ok":
			tl.ok++
		case "malformed":
			tl.malformed++
		case "lost":
			tl.lost++
		case "errored":
			tl.errored++
		}
		if named {
			tl.fsckNamed++
		}
	})
	t.Logf("round %d (%s): pulled with %d durability points done, in flight %v; %s: %v (durable %v) %s; fsck after pull: %s",
		res.round, res.decision, res.st.done, res.st.inflight, outcome, got, res.durable().sig(), detail, fsckSummary(pulled))
	if outcome != "ok" && outcome != "lost" {
		r.install()
		return
	}
	r.model = res.states[k]
	if err := r.vol.Remount(); err != nil { // a clean unmount: what recovery wrote is durable
		t.Fatalf("Remount (seed %d round %d): %v", r.seed, res.round, err)
	}
}

// verifyPlain opens path with plain SQLite, which rolls back a hot
// journal or replays a WAL, and checks it. detail is empty when it is
// sound.
func verifyPlain(path string) (got sig, detail string) {
	got.rows = -1
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return got, err.Error()
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if check := integrity(db); check != "ok" {
		return got, "integrity_check: " + check
	}
	if err := db.QueryRow(sigSQL).Scan(&got.rows, &got.sumG, &got.sumGID); err != nil {
		return sig{rows: -1}, "reading the table: " + err.Error()
	}
	return got, ""
}

// fsckOurs returns the lines of a checker's output that name one of the
// yank databases' files. A yank of a FAT or exFAT volume leaves findings
// that no file caused: the volume's dirty flag, a wrong free-cluster
// count, clusters allocated to no file. Only lines naming our files
// count against us.
func fsckOurs(output string) []string {
	var out []string
	for _, line := range strings.Split(output, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "yank") || strings.Contains(l, "ejectsafe") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// fsckSummary is a checker's verdict on one line.
func fsckSummary(rep realfs.FsckReport) string {
	if rep.Clean {
		return "clean"
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(rep.Output), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return fmt.Sprintf("exit %d: %s", rep.ExitCode, strings.Join(lines, " | "))
}

// unmount unmounts cleanly, waiting up to 2 s for the mount to be free,
// and names what holds it if it stays busy.
func (r *runner) unmount() error {
	var err error
	for i := 0; i < 20; i++ {
		if err = r.vol.Unmount(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w; open on the mount: %q", err, openOn(r.vol.Mount))
}

// openOn lists the descriptors of every process that name a file under
// mount.
func openOn(mount string) []string {
	var out []string
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, mount+"/") {
			cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(fd)), "cmdline"))
			out = append(out, fmt.Sprintf("%s -> %s (%s)", fd, l, strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	return out
}

// liveLog reports whether the -wal at path is one SQLite reads something
// from: there, and not retired (checkpoint.LogState).
func liveLog(path string) bool {
	exists, retired, err := checkpoint.LogState(device.OS, path)
	return err == nil && exists && !retired
}
