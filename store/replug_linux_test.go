package store

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// replugApp is a replugChild process, driven line by line.
type replugApp struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string
	events chan string
}

func startApp(t *testing.T, name, path string) *replugApp {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), replugChildEnv+"="+path)
	cmd.Stderr = io.Discard
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &replugApp{t: t, name: name, cmd: cmd, in: in, lines: make(chan string, 100), events: make(chan string, 100)}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "event ") {
				a.events <- l
			} else {
				a.lines <- l
			}
		}
		close(a.lines)
	}()
	if got := a.next(); got != "ready" {
		t.Fatalf("%s: %s", name, got)
	}
	return a
}

func (a *replugApp) next() string {
	a.t.Helper()
	select {
	case l, ok := <-a.lines:
		if !ok {
			a.t.Fatalf("%s exited", a.name)
		}
		return l
	case <-time.After(60 * time.Second):
		a.t.Fatalf("%s did not answer", a.name)
	}
	return ""
}

// do sends one command and returns the answer.
func (a *replugApp) do(cmd string) string {
	a.t.Helper()
	if _, err := fmt.Fprintln(a.in, cmd); err != nil {
		a.t.Fatalf("%s: %s: %v", a.name, cmd, err)
	}
	return a.next()
}

// must sends a command whose answer must start with want.
func (a *replugApp) must(cmd, want string) string {
	a.t.Helper()
	got := a.do(cmd)
	if !strings.HasPrefix(got, want) {
		a.t.Fatalf("%s: %s = %q; want %q...", a.name, cmd, got, want)
	}
	return got
}

// waitEvent waits for an event with condition c (and reattached).
func (a *replugApp) waitEvent(c Condition, reattached bool) string {
	a.t.Helper()
	want := fmt.Sprintf("event %d %v", c, reattached)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case e := <-a.events:
			if strings.HasPrefix(e, want) {
				return e
			}
			a.t.Logf("%s: %s", a.name, e)
		case <-deadline:
			a.t.Fatalf("%s: no %q (%v)", a.name, want, c)
		}
	}
}

func (a *replugApp) signal(sig syscall.Signal) {
	a.t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		a.t.Fatal(err)
	}
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameFiles(t *testing.T, what string, before, after map[string][]byte) {
	t.Helper()
	if reflect.DeepEqual(before, after) {
		return
	}
	for p, b := range after {
		if old, ok := before[p]; !ok {
			t.Errorf("%s: %s was created", what, p)
		} else if string(old) != string(b) {
			t.Errorf("%s: %s changed", what, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s: %s was removed", what, p)
		}
	}
}

func cpImage(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v: %s", src, dst, err, out)
	}
}

func countWho(t *testing.T, path, who string) string {
	t.Helper()
	return sqlite3CLI(t, path, fmt.Sprintf("SELECT count(*) FROM t WHERE who='%s'", who))
}

// TestStore_replug: the same drive pulled and plugged back while the app
// lives, on real exFAT and FAT: the app reattaches by itself, and every
// row it committed before and after the pull is durable after the next
// checkpoint, as the stock sqlite3 CLI reads the file.
func TestStore_replug(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			v, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(v.Mount, "app.db")
			app := startApp(t, "app", path)
			app.must("create", "ok <nil>")
			app.must("insert before 100", "ok <nil>")
			app.must("checkpoint", "ckpt changed=false locked=false lost=false err=<nil>")
			app.must("insert unckpt 50", "ok <nil>")
			if err := v.Pull(); err != nil {
				t.Fatal(err)
			}
			app.must("insert during 50", "ok <nil>")
			t.Log(app.waitEvent(DriveLost, false))
			if err := v.Remount(); err != nil {
				t.Fatal(err)
			}
			t.Log(app.waitEvent(Attached, true))
			app.must("insert after 50", "ok <nil>")
			app.must("checkpoint", "ckpt changed=false locked=false lost=false err=<nil>")
			for who, want := range map[string]string{"before": "100", "unckpt": "50", "during": "50", "after": "50"} {
				if got := countWho(t, path, who); got != want {
					t.Errorf("the drive holds %s rows %q; want %s", who, got, want)
				}
			}
			app.must("close", "close <nil>")
		})
	}
}

// TestStore_replugSecondProcess: a second process opens the database
// while the first one's drive is away; when the first comes back it stays
// detached (ErrLocked) and writes nothing, and once the second closed it
// still writes nothing (the database changed: ErrDriveChanged). Every row
// either process had made durable stays.
func TestStore_replugSecondProcess(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			v, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(v.Mount, "app.db")
			p1 := startApp(t, "first", path)
			p1.must("create", "ok <nil>")
			p1.must("insert p1 100", "ok <nil>")
			p1.must("checkpoint", "ckpt changed=false locked=false lost=false err=<nil>")
			if err := v.Pull(); err != nil {
				t.Fatal(err)
			}
			p1.signal(syscall.SIGSTOP) // the first process sleeps through the re-plug
			if err := v.Remount(); err != nil {
				t.Fatal(err)
			}
			p2 := startApp(t, "second", path)
			p2.must("insert p2 100", "ok <nil>")
			p2.must("checkpoint", "ckpt changed=false locked=false lost=false err=<nil>")
			snap := snapshot(t, v.Mount)
			p1.signal(syscall.SIGCONT)
			p1.must("insert p1late 10", "ok <nil>") // into memory
			p1.must("checkpoint", "ckpt changed=false locked=true")
			t.Log(p1.waitEvent(Detached, false))
			sameFiles(t, "with the second process open", snap, snapshot(t, v.Mount))
			p2.must("close", "close <nil>")
			snap = snapshot(t, v.Mount)
			got := p1.must("checkpoint", "ckpt changed=true")
			t.Log(got)
			time.Sleep(3 * replugInterval)
			sameFiles(t, "after the second process closed", snap, snapshot(t, v.Mount))
			if p1, p2 := countWho(t, path, "p1"), countWho(t, path, "p2"); p1 != "100" || p2 != "100" {
				t.Errorf("the drive holds %s rows of the first process, %s of the second; want 100, 100", p1, p2)
			}
		})
	}
}

// TestStore_replugSwap: the app's drive A is pulled and drive B, with a
// database of its own at the same path, is mounted there; then A comes
// back after the stock sqlite3 CLI changed its database. After three
// checkpoint intervals, every file on B (and on the changed A) is
// byte-identical to before, nothing was created, and the app got
// ErrDriveChanged naming what differs.
func TestStore_replugSwap(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			va, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			vb, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			// Drive B: its own database at the same path.
			sb, err := Open(filepath.Join(vb.Mount, "app.db"), &Options{ManualCheckpoint: true})
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, sb.DB(), "CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, v BLOB)")
			mustExec(t, sb.DB(), "INSERT INTO t(who) VALUES ('b'), ('b'), ('b')")
			if err := sb.Close(); err != nil {
				t.Fatal(err)
			}
			if err := vb.Unmount(); err != nil {
				t.Fatal(err)
			}

			path := filepath.Join(va.Mount, "app.db")
			app := startApp(t, "app", path)
			app.must("create", "ok <nil>")
			app.must("insert a 100", "ok <nil>")
			app.must("checkpoint", "ckpt changed=false locked=false lost=false err=<nil>")
			if err := va.Pull(); err != nil {
				t.Fatal(err)
			}
			app.must("insert during 20", "ok <nil>")
			t.Log(app.waitEvent(DriveLost, false))
			saved := va.Image + ".a"
			cpImage(t, va.Image, saved)
			cpImage(t, vb.Image, va.Image) // B goes into A's slot
			if err := va.Remount(); err != nil {
				t.Fatal(err)
			}
			snap := snapshot(t, va.Mount)
			if countWho(t, filepath.Join(va.Mount, "app.db"), "b") != "3" {
				t.Fatal("drive B is not mounted at A's path")
			}
			t.Log(app.waitEvent(DriveChanged, false))
			time.Sleep(3 * replugInterval)
			t.Log(app.must("checkpoint", "ckpt changed=true locked=false"))
			sameFiles(t, "drive B", snap, snapshot(t, va.Mount))

			// A comes back, changed by the stock sqlite3 CLI meanwhile.
			app.signal(syscall.SIGSTOP)
			if err := va.Pull(); err != nil {
				t.Fatal(err)
			}
			cpImage(t, saved, va.Image)
			if err := va.Remount(); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("blkid", va.Device).CombinedOutput(); err == nil {
				t.Logf("plugged back: %s", out)
			}
			if got := countWho(t, path, "a"); got != "100" {
				t.Fatalf("drive A back holds %s rows of the app; want 100", got)
			}
			changeElsewhere(t, path, "INSERT INTO t(who) VALUES ('elsewhere')")
			snap = snapshot(t, va.Mount)
			app.signal(syscall.SIGCONT)
			time.Sleep(3 * replugInterval)
			got := app.must("checkpoint", "ckpt changed=true locked=false")
			if !strings.Contains(got, "changed elsewhere") {
				t.Errorf("the error does not say the database changed elsewhere: %s", got)
			}
			t.Log(got)
			sameFiles(t, "drive A changed elsewhere", snap, snapshot(t, va.Mount))
			if st := app.must("state", "state"); !strings.HasPrefix(st, fmt.Sprintf("state %d", DriveChanged)) {
				t.Errorf("State = %s; want DriveChanged", st)
			}
		})
	}
}

// changeElsewhere changes the database as another computer would: the
// stock sqlite3 CLI on a copy, which then replaces the file on the drive
// (written whole under a new name, fsynced, renamed over it: fusefat
// corrupts files rewritten in place, and its WAL mode fails).
func changeElsewhere(t *testing.T, path, sql string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "elsewhere.db")
	cpImage(t, path, tmp)
	if out, err := exec.Command("sqlite3", tmp, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path+".new", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	syscall.Sync()
}
