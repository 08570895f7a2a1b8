package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/store"
)

// demoDB makes a database with the demo and returns its path.
func demoDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	if code := run([]string{"demo", dir}, &out, &out); code != 0 {
		t.Fatalf("demo: %d\n%s", code, out.String())
	}
	return filepath.Join(dir, "demo.db")
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRun_verifyRecover(t *testing.T) {
	db := demoDB(t)
	t.Run("clean", func(t *testing.T) {
		code, out, _ := runCmd(t, "verify", db)
		if code != 0 || !strings.Contains(out, "integrity_check: ok") || !strings.Contains(out, "nothing to do") {
			t.Fatalf("verify = %d:\n%s", code, out)
		}
	})
	t.Run("stray copy", func(t *testing.T) {
		stray := db + ".ejectsafe-tmp-99"
		if err := os.WriteFile(stray, []byte("half a copy"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCmd(t, "verify", "--json", db)
		var rep struct {
			Removed []string
			OK      bool `json:"ok"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("verify --json: %v\n%s", err, out)
		}
		if code != 1 || rep.OK || len(rep.Removed) != 1 || rep.Removed[0] != stray {
			t.Fatalf("verify = %d, %+v; want 1 and the stray copy named", code, rep)
		}
		if _, err := os.Stat(stray); err != nil {
			t.Fatalf("verify modified the drive: %v", err)
		}
		if code, out, errs := runCmd(t, "recover", db); code != 0 || !strings.Contains(out, "removed: "+stray) {
			t.Fatalf("recover = %d:\n%s%s", code, out, errs)
		}
		if _, err := os.Stat(stray); !os.IsNotExist(err) {
			t.Fatalf("recover left the stray copy: %v", err)
		}
		if code, out, _ := runCmd(t, "verify", db); code != 0 {
			t.Fatalf("verify after recover = %d:\n%s", code, out)
		}
	})
	t.Run("store holds it", func(t *testing.T) {
		s, err := store.Open(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		code, _, errs := runCmd(t, "recover", db)
		want := "locked by process " + strconv.Itoa(os.Getpid())
		if runtime.GOOS != "linux" {
			want = "is locked by" // the holder is named on Linux only (/proc/locks)
		}
		if code != 2 || !strings.Contains(errs, want) {
			t.Fatalf("recover under a live store = %d: %s", code, errs)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		for i := 4096 + 100; i < 4096+400; i++ { // scribble over page 2
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(db, b, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCmd(t, "verify", db)
		if code != 1 {
			t.Fatalf("verify of a corrupted database = %d:\n%s%s", code, out, errs)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"verify"}, {"recover"}, {"verify", "a", "b"}, {"recover", "--bogus", db}} {
			if code, _, _ := runCmd(t, args...); code != 2 {
				t.Errorf("%q = %d; want 2", args, code)
			}
		}
	})
}
