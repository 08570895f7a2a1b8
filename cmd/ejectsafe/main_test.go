package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestRun_usage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantCode int
	}{
		{nil, 2},
		{[]string{"help"}, 0},
		{[]string{"frobnicate"}, 2},
	} {
		var out, errb bytes.Buffer
		if got := run(tc.args, &out, &errb); got != tc.wantCode {
			t.Errorf("run(%q) = %d; want %d", tc.args, got, tc.wantCode)
		}
	}
	var out bytes.Buffer
	run([]string{"help"}, &out, &out)
	golden(t, "usage.golden", out.String())
}

func TestRun_demo(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"demo", dir}, &out, &errb); code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"unchanged by 4000 commits: yes",
		"-wal, -shm or -journal on disk: none",
		"changed by the checkpoint: yes",
		"4000 rows read back (expected 4000), integrity_check: ok",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// A second run in the same directory refuses rather than mixing data.
	if code := run([]string{"demo", dir}, &out, &errb); code == 0 {
		t.Errorf("demo in a used directory succeeded")
	}
}
