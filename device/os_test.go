package device

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// writeTestFile creates path with data through the os package, so tests of
// Open do not depend on Create.
func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readTestFile returns the content of path through the os package.
func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closeTest closes c and fails the test on error.
func closeTest(t *testing.T, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOS_Open(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	writeTestFile(t, existing, []byte("hello"))

	tests := []struct {
		name      string
		path      string
		mode      OpenMode
		wantErr   error // nil: success
		wantWrite bool  // WriteAt succeeds
	}{
		{"missing read-only", filepath.Join(dir, "missing-ro"), ReadOnly, fs.ErrNotExist, false},
		{"missing read-write", filepath.Join(dir, "missing-rw"), ReadWrite, fs.ErrNotExist, false},
		{"existing read-only", existing, ReadOnly, nil, false},
		{"existing read-write", existing, ReadWrite, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := OS.Open(tt.path, tt.mode)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open(%q) err = %v, want %v", tt.path, err, tt.wantErr)
				}
				if _, err := os.Stat(tt.path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Open created %q: Stat err = %v", tt.path, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.path, err)
			}
			defer closeTest(t, f)
			if got, want := f.Name(), tt.path; got != want {
				t.Errorf("Name() = %q, want %q", got, want)
			}
			buf := make([]byte, 5)
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			if got, want := string(buf), "hello"; got != want {
				t.Errorf("ReadAt = %q, want %q", got, want)
			}
			_, err = f.WriteAt([]byte("H"), 0)
			if got, want := err == nil, tt.wantWrite; got != want {
				t.Errorf("WriteAt err = %v, want success %v", err, want)
			}
		})
	}

	t.Run("unknown mode", func(t *testing.T) {
		f, err := OS.Open(existing, OpenMode(99))
		if err == nil {
			f.Close()
			t.Fatal("Open with mode 99 succeeded, want error")
		}
	})
}

func TestOS_Create(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	writeTestFile(t, existing, []byte("keep"))
	dangling := filepath.Join(dir, "dangling")
	if runtime.GOOS != "windows" {
		if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name    string
		path    string
		wantErr error
		skip    bool
	}{
		{"new", filepath.Join(dir, "new"), nil, false},
		{"existing", existing, fs.ErrExist, false},
		{"dangling symlink", dangling, fs.ErrExist, runtime.GOOS == "windows"},
		{"missing parent", filepath.Join(dir, "no", "such"), fs.ErrNotExist, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("not on " + runtime.GOOS)
			}
			f, err := OS.Create(tt.path, 0o600)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Create(%q) err = %v, want %v", tt.path, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create(%q): %v", tt.path, err)
			}
			defer closeTest(t, f)
			if _, err := f.WriteAt([]byte("x"), 0); err != nil {
				t.Errorf("WriteAt on created file: %v", err)
			}
			if got, want := f.Name(), tt.path; got != want {
				t.Errorf("Name() = %q, want %q", got, want)
			}
		})
	}

	if got, want := string(readTestFile(t, existing)), "keep"; got != want {
		t.Errorf("existing file after failed Create = %q, want %q", got, want)
	}
}

func TestOSFile_ReadWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OS.Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTest(t, f)

	size := func() int64 {
		t.Helper()
		n, err := f.Size()
		if err != nil {
			t.Fatalf("Size: %v", err)
		}
		return n
	}

	if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if _, err := f.WriteAt([]byte("ab"), 12); err != nil { // leaves a hole at 10, 11
		t.Fatalf("WriteAt past end: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got, want := size(), int64(14); got != want {
		t.Errorf("Size after writes = %d, want %d", got, want)
	}

	tests := []struct {
		name    string
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{"full", 0, 10, "0123456789", nil},
		{"middle", 3, 4, "3456", nil},
		{"hole reads zeros", 9, 5, "9\x00\x00ab", nil},
		{"short read is EOF", 12, 4, "ab", io.EOF},
		{"at end is EOF", 14, 1, "", io.EOF},
		{"past end is EOF", 100, 1, "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, tt.n)
			n, err := f.ReadAt(buf, tt.off)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadAt(%d, %d) err = %v, want %v", tt.n, tt.off, err, tt.wantErr)
			}
			if got := string(buf[:n]); got != tt.want {
				t.Errorf("ReadAt(%d, %d) = %q, want %q", tt.n, tt.off, got, tt.want)
			}
		})
	}

	t.Run("truncate", func(t *testing.T) {
		for _, sz := range []int64{4, 4096, 7} {
			if err := f.Truncate(sz); err != nil {
				t.Fatalf("Truncate(%d): %v", sz, err)
			}
			if got, want := size(), sz; got != want {
				t.Errorf("Size after Truncate(%d) = %d, want %d", sz, got, want)
			}
		}
		if got, want := readTestFile(t, path), []byte("0123\x00\x00\x00"); !bytes.Equal(got, want) {
			t.Errorf("content after truncates = %q, want %q", got, want)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		const n, block = 16, 512
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := bytes.Repeat([]byte{byte(i)}, block)
				if _, err := f.WriteAt(p, int64(i*block)); err != nil {
					t.Errorf("WriteAt block %d: %v", i, err)
					return
				}
				got := make([]byte, block)
				if _, err := f.ReadAt(got, int64(i*block)); err != nil {
					t.Errorf("ReadAt block %d: %v", i, err)
				} else if !bytes.Equal(got, p) {
					t.Errorf("block %d read back wrong", i)
				}
			}()
		}
		wg.Wait()
		if got, want := size(), int64(n*block); got != want {
			t.Errorf("Size = %d, want %d", got, want)
		}
	})
}

func TestOSFile_Close(t *testing.T) {
	f, err := OS.Create(filepath.Join(t.TempDir(), "f"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	closeTest(t, f)
	if err := f.Close(); err == nil {
		t.Error("second Close succeeded, want error")
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt after Close succeeded, want error")
	}
}

func TestOSFile_Fd(t *testing.T) {
	f, err := OS.Create(filepath.Join(t.TempDir(), "f"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTest(t, f)
	fd, ok := f.(interface{ Fd() uintptr })
	if !ok {
		t.Fatalf("%T has no Fd method", f)
	}
	if fd.Fd() == ^uintptr(0) {
		t.Error("Fd() = invalid descriptor")
	}
}

func TestOS_Rename(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		setup    map[string]string // file name -> content
		old, new string
		wantErr  error
	}{
		{"to new name", map[string]string{"a": "A"}, "a", "b", nil},
		{"replaces existing", map[string]string{"a": "A", "b": "B"}, "a", "b", nil},
		{"missing source", map[string]string{"b": "B"}, "a", "b", fs.ErrNotExist},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, string(rune('0'+i)))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.setup {
				writeTestFile(t, filepath.Join(sub, name), []byte(data))
			}
			oldPath, newPath := filepath.Join(sub, tt.old), filepath.Join(sub, tt.new)
			err := OS.Rename(oldPath, newPath)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Rename err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rename: %v", err)
			}
			if got, want := string(readTestFile(t, newPath)), tt.setup[tt.old]; got != want {
				t.Errorf("%s after Rename = %q, want %q", tt.new, got, want)
			}
			if _, err := os.Stat(oldPath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%s) after Rename err = %v, want ErrNotExist", tt.old, err)
			}
		})
	}
}

func TestOS_Remove(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "f")
	writeTestFile(t, existing, nil)

	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{"existing", existing, nil},
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := OS.Remove(tt.path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Remove err = %v, want %v", err, tt.wantErr)
			}
			if _, err := os.Stat(tt.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat after Remove err = %v, want ErrNotExist", err)
			}
		})
	}
}

func TestOS_Stat(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeTestFile(t, file, []byte("12345"))

	tests := []struct {
		name     string
		path     string
		wantDir  bool
		wantSize int64
		wantErr  error
	}{
		{"file", file, false, 5, nil},
		{"dir", dir, true, -1, nil},
		{"missing", filepath.Join(dir, "missing"), false, 0, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := OS.Stat(tt.path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Stat err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got, want := fi.IsDir(), tt.wantDir; got != want {
				t.Errorf("IsDir = %v, want %v", got, want)
			}
			if tt.wantSize >= 0 {
				if got, want := fi.Size(), tt.wantSize; got != want {
					t.Errorf("Size = %d, want %d", got, want)
				}
			}
		})
	}
}

func TestOS_List(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	empty := filepath.Join(dir, "empty")
	for _, d := range []string{full, empty, filepath.Join(full, "m-dir")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"z", "a", "B", "a.db-wal", "a.db"} {
		writeTestFile(t, filepath.Join(full, name), nil)
	}

	tests := []struct {
		name    string
		dir     string
		want    []string
		wantErr error
	}{
		{"sorted", full, []string{"B", "a", "a.db", "a.db-wal", "m-dir", "z"}, nil},
		{"empty", empty, []string{}, nil},
		{"missing", filepath.Join(dir, "missing"), nil, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OS.List(tt.dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("List err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOS_SyncDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeTestFile(t, file, nil)

	tests := []struct {
		name    string
		path    string
		wantErr bool
		is      error // when wantErr, errors.Is target if not nil
	}{
		{"dir", dir, false, nil},
		{"missing", filepath.Join(dir, "missing"), true, fs.ErrNotExist},
		{"regular file", file, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := OS.SyncDir(tt.path)
			if got, want := err != nil, tt.wantErr; got != want {
				t.Fatalf("SyncDir(%q) err = %v, want error %v", tt.path, err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("SyncDir err = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestOS_FreeSpace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeTestFile(t, file, nil)

	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{"dir", dir, nil},
		{"file", file, nil},
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OS.FreeSpace(tt.path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FreeSpace err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got <= 0 {
				t.Errorf("FreeSpace = %d, want > 0", got)
			}
		})
	}
}

// checkLocked fails the test unless err is a *LockedError for path held
// by wantPID (checked where the platform can tell holders).
func checkLocked(t *testing.T, err error, path string, wantPID int) {
	t.Helper()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock err = %v, want ErrLocked", err)
	}
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Lock err = %T, want *LockedError", err)
	}
	if got, want := le.Path, path; got != want {
		t.Errorf("LockedError.Path = %q, want %q", got, want)
	}
	if runtime.GOOS != "linux" {
		return
	}
	if got, want := le.PID, wantPID; got != want {
		t.Errorf("LockedError.PID = %d, want %d", got, want)
	}
}

func TestOS_Lock(t *testing.T) {
	dir := t.TempDir()

	t.Run("creates missing file", func(t *testing.T) {
		path := filepath.Join(dir, "new.lock")
		l, err := OS.Lock(path)
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		defer closeTest(t, l)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("lock file not created: %v", err)
		}
	})

	t.Run("same process conflicts", func(t *testing.T) {
		path := filepath.Join(dir, "same.lock")
		l, err := OS.Lock(path)
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		defer closeTest(t, l)
		l2, err := OS.Lock(path)
		if err == nil {
			l2.Close()
			t.Fatal("second Lock in the same process succeeded")
		}
		checkLocked(t, err, path, os.Getpid())
	})

	t.Run("released by close", func(t *testing.T) {
		path := filepath.Join(dir, "release.lock")
		for i := range 3 {
			l, err := OS.Lock(path)
			if err != nil {
				t.Fatalf("Lock #%d: %v", i, err)
			}
			closeTest(t, l)
			if err := l.Close(); err != nil {
				t.Errorf("second Close #%d: %v, want nil (idempotent)", i, err)
			}
		}
	})

	t.Run("missing dir", func(t *testing.T) {
		_, err := OS.Lock(filepath.Join(dir, "no", "such.lock"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Lock err = %v, want ErrNotExist", err)
		}
	})
}

// helperEnv tells a re-executed test binary to act as TestHelperProcess.
const helperEnv = "EJECTSAFE_DEVICE_HELPER_LOCK"

// TestHelperProcess is not a test: run by TestOS_Lock_otherProcess in a
// child process, it takes the lock named by $EJECTSAFE_DEVICE_HELPER_LOCK,
// prints "locked" and holds the lock until stdin reaches EOF.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	l, err := OS.Lock(path)
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
	if err := l.Close(); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func TestOS_Lock_otherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "child.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
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
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if got, want := strings.TrimSpace(line), "locked"; got != want {
		t.Fatalf("child said %q (err %v), want %q", got, err, want)
	}

	l, err := OS.Lock(path)
	if err == nil {
		l.Close()
		t.Fatal("Lock succeeded while the child holds it")
	}
	checkLocked(t, err, path, cmd.Process.Pid)

	// The child releases on stdin EOF and exits; the lock is ours then.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	l, err = OS.Lock(path)
	if err != nil {
		t.Fatalf("Lock after the child exited: %v", err)
	}
	closeTest(t, l)
}
