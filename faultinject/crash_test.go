package faultinject

import (
	"bytes"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
)

const seeds = 40

func TestFS_CrashImage(t *testing.T) {
	t.Run("created file vanishes until its directory is synced", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/a")
		mustWrite(t, h, 0, "data")
		mustSync(t, h)
		if got := content(t, f.CrashImage(DropAll, 0), "/vol/a"); got != "<missing>" {
			t.Fatalf("DropAll before SyncDir: /vol/a = %q, want missing", got)
		}
		if got := content(t, f.CrashImage(KeepAll, 0), "/vol/a"); got != "data" {
			t.Fatalf("KeepAll before SyncDir: /vol/a = %q", got)
		}
		mustOK(t, f.SyncDir("/vol"))
		for _, p := range AllPolicies() {
			if got := content(t, f.CrashImage(p, 1), "/vol/a"); got != "data" {
				t.Fatalf("%s after SyncDir: /vol/a = %q", p, got)
			}
		}
	})
	t.Run("synced data survives every policy and seed", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/setup", "from setup")
		h := mustCreate(t, f, "/vol/synced")
		mustWrite(t, h, 0, strings.Repeat("s", 5000))
		mustSync(t, h)
		mustOK(t, f.SyncDir("/vol"))
		// Unsynced noise for the random policies to work on.
		n := mustCreate(t, f, "/vol/noise")
		for i := range 10 {
			mustWrite(t, n, int64(i*700), strings.Repeat("n", 600))
		}
		mustOK(t, f.Rename("/vol/noise", "/vol/noise2"))
		mustOK(t, f.Remove("/vol/noise2"))
		for _, p := range AllPolicies() {
			for seed := range int64(seeds) {
				img := f.CrashImage(p, seed)
				if got := content(t, img, "/vol/setup"); got != "from setup" {
					t.Fatalf("%s seed %d: /vol/setup = %q", p, seed, got)
				}
				if got := content(t, img, "/vol/synced"); got != strings.Repeat("s", 5000) {
					t.Fatalf("%s seed %d: /vol/synced changed", p, seed)
				}
			}
		}
	})
	t.Run("KeepAll keeps and DropAll drops unsynced writes", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "aaaa")
		h := mustOpen(t, f, "/vol/a", device.ReadWrite)
		mustWrite(t, h, 2, "XYZ")
		mustOK(t, h.Truncate(4))
		if got := content(t, f.CrashImage(KeepAll, 0), "/vol/a"); got != "aaXY" {
			t.Fatalf("KeepAll = %q, want aaXY", got)
		}
		if got := content(t, f.CrashImage(DropAll, 0), "/vol/a"); got != "aaaa" {
			t.Fatalf("DropAll = %q, want aaaa", got)
		}
		if got := content(t, f, "/vol/a"); got != "aaXY" {
			t.Fatalf("the running FS changed: %q", got)
		}
	})
	t.Run("KeepRandomSubset keeps some writes, not a prefix", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "........")
		h := mustOpen(t, f, "/vol/a", device.ReadWrite)
		for i := range 8 {
			mustWrite(t, h, int64(i), "x")
		}
		mixed, gap := false, false
		for seed := range int64(seeds) {
			got := content(t, f.CrashImage(KeepRandomSubset, seed), "/vol/a")
			if strings.Trim(got, ".x") != "" || len(got) != 8 {
				t.Fatalf("seed %d: %q holds bytes never written", seed, got)
			}
			mixed = mixed || strings.Contains(got, "x") && strings.Contains(got, ".")
			gap = gap || strings.Contains(got, ".x")
		}
		if !mixed || !gap {
			t.Fatalf("no seed kept a strict, non-prefix subset (mixed=%v gap=%v)", mixed, gap)
		}
	})
	t.Run("CutTail keeps a prefix of the unsynced stream", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/log")
		mustSync(t, h)
		mustOK(t, f.SyncDir("/vol"))
		const stream = "aaaabbbbcccc"
		for i := 0; i < len(stream); i += 4 {
			mustWrite(t, h, int64(i), stream[i:i+4])
		}
		lengths := map[int]bool{}
		for seed := range int64(seeds) {
			got := content(t, f.CrashImage(CutTail, seed), "/vol/log")
			if !strings.HasPrefix(stream, got) {
				t.Fatalf("seed %d: %q is not a prefix of %q", seed, got, stream)
			}
			lengths[len(got)] = true
		}
		partial := false
		for n := range lengths {
			partial = partial || n%4 != 0
		}
		if len(lengths) < 4 || !partial {
			t.Fatalf("cut lengths %v: want several, some inside a write", lengths)
		}
	})
	t.Run("garbage changes bytes, only in the sectors unsynced writes touch", func(t *testing.T) {
		for _, tc := range []struct {
			p      Policy
			lo, hi int
		}{{Garbage512, 512, 1024}, {Garbage4096, 0, 4096}} {
			f := newVol(t, Options{})
			orig := bytes.Repeat([]byte("s"), 8192)
			mustOK(t, f.WriteFile("/vol/a", orig, 0o644))
			h := mustOpen(t, f, "/vol/a", device.ReadWrite)
			mustWrite(t, h, 1000, "0123456789")
			want := content(t, f, "/vol/a")
			for seed := range int64(seeds) {
				got := content(t, f.CrashImage(tc.p, seed), "/vol/a")
				if len(got) != len(want) {
					t.Fatalf("%s seed %d: size %d, want %d", tc.p, seed, len(got), len(want))
				}
				if got[tc.lo:tc.hi] == want[tc.lo:tc.hi] || got[tc.lo:tc.hi] == string(orig[tc.lo:tc.hi]) {
					t.Fatalf("%s seed %d: sector %d-%d not garbage", tc.p, seed, tc.lo, tc.hi)
				}
				if got[:tc.lo] != want[:tc.lo] || got[tc.hi:] != want[tc.hi:] {
					t.Fatalf("%s seed %d: bytes outside the touched sectors changed", tc.p, seed)
				}
			}
		}
	})
	t.Run("garbage of an appending write stops at the new size", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "head")
		h := mustOpen(t, f, "/vol/a", device.ReadWrite)
		mustWrite(t, h, 4, "tail")
		for seed := range int64(seeds) {
			got := content(t, f.CrashImage(Garbage512, seed), "/vol/a")
			if len(got) != 8 || got == "headtail" {
				t.Fatalf("seed %d: %q, want 8 bytes, not the written ones", seed, got)
			}
		}
	})
	t.Run("an unsynced rename over a file keeps old or new", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/db", "old")
		mustWriteFile(t, f, "/vol/tmp", "new")
		mustOK(t, f.Rename("/vol/tmp", "/vol/db"))
		if db, tmp := content(t, f.CrashImage(DropAll, 0), "/vol/db"), content(t, f.CrashImage(DropAll, 0), "/vol/tmp"); db != "old" || tmp != "new" {
			t.Fatalf("DropAll: db=%q tmp=%q", db, tmp)
		}
		if db, tmp := content(t, f.CrashImage(KeepAll, 0), "/vol/db"), content(t, f.CrashImage(KeepAll, 0), "/vol/tmp"); db != "new" || tmp != "<missing>" {
			t.Fatalf("KeepAll: db=%q tmp=%q", db, tmp)
		}
		seen := map[string]bool{}
		for seed := range int64(seeds) {
			img := f.CrashImage(CutTail, seed)
			db, tmp := content(t, img, "/vol/db"), content(t, img, "/vol/tmp")
			if !(db == "old" && tmp == "new" || db == "new" && tmp == "<missing>") {
				t.Fatalf("seed %d: db=%q tmp=%q: the rename was torn", seed, db, tmp)
			}
			seen[db] = true
		}
		if len(seen) != 2 {
			t.Fatalf("random policy always gave %v", seen)
		}
	})
	t.Run("a non-atomic rename can leave both names or neither", func(t *testing.T) {
		f := New(Options{NonAtomicRename: true})
		mustOK(t, f.MkdirAll("/vol"))
		mustWriteFile(t, f, "/vol/a", "x")
		mustOK(t, f.Rename("/vol/a", "/vol/b"))
		outcomes := map[string]bool{}
		for seed := range int64(seeds) {
			img := f.CrashImage(KeepRandomSubset, seed)
			outcomes[content(t, img, "/vol/a")+","+content(t, img, "/vol/b")] = true
		}
		for _, want := range []string{"x,x", "<missing>,<missing>", "x,<missing>", "<missing>,x"} {
			if !outcomes[want] {
				t.Fatalf("outcomes %v lack %q", outcomes, want)
			}
		}
	})
	t.Run("an unsynced remove comes back", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "a")
		mustOK(t, f.Remove("/vol/a"))
		if got := content(t, f.CrashImage(DropAll, 0), "/vol/a"); got != "a" {
			t.Fatalf("DropAll: %q", got)
		}
		mustOK(t, f.SyncDir("/vol"))
		if got := content(t, f.CrashImage(KeepRandomSubset, 3), "/vol/a"); got != "<missing>" {
			t.Fatalf("after SyncDir: %q", got)
		}
	})
	t.Run("writes lost to a failed Sync stay lost", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "old")
		h := mustOpen(t, f, "/vol/a", device.ReadWrite)
		mustWrite(t, h, 0, "new")
		mustOK(t, f.Inject(Fail(syscall.EIO).On(OpSync)))
		if err := h.Sync(); err == nil {
			t.Fatal("Sync did not fail")
		}
		mustSync(t, h) // succeeds, as on Linux, and persists nothing
		if got := content(t, f, "/vol/a"); got != "new" {
			t.Fatalf("reads see %q, want the page cache's new", got)
		}
		if got := content(t, f.CrashImage(KeepAll, 0), "/vol/a"); got != "old" {
			t.Fatalf("KeepAll after failed sync: %q, want old", got)
		}
	})
	t.Run("same seed, same image byte for byte", func(t *testing.T) {
		build := func() *FS {
			f := newVol(t, Options{})
			mustWriteFile(t, f, "/vol/db", strings.Repeat("d", 9000))
			tmp := mustCreate(t, f, "/vol/tmp")
			for i := range 20 {
				mustWrite(t, tmp, int64(i*613), strings.Repeat(string(rune('a'+i)), 700))
			}
			mustOK(t, tmp.Truncate(9000))
			db := mustOpen(t, f, "/vol/db", device.ReadWrite)
			mustWrite(t, db, 4000, "in place")
			mustOK(t, f.Rename("/vol/tmp", "/vol/db2"))
			mustCreate(t, f, "/vol/other")
			return f
		}
		f1, f2 := build(), build()
		for _, p := range AllPolicies() {
			differs := false
			for seed := range int64(10) {
				a, b, c := f1.CrashImage(p, seed), f1.CrashImage(p, seed), f2.CrashImage(p, seed)
				if !sameFiles(a, b) || !sameFiles(a, c) || a.Dump() != c.Dump() {
					t.Fatalf("%s seed %d: images differ:\n%s\n%s", p, seed, a.Dump(), c.Dump())
				}
				differs = differs || !sameFiles(a, f1.CrashImage(p, seed+100))
			}
			if p.Random() && !differs {
				t.Fatalf("%s: every seed gave the same image", p)
			}
		}
	})
	t.Run("an image is a fresh, fully durable FS", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/a")
		mustWrite(t, h, 0, "x")
		l, err := f.Lock("/vol/lock")
		mustOK(t, err)
		defer l.Close()
		img := f.CrashImage(KeepAll, 0)
		if img.OpCount() != 0 || len(img.Trace()) != 0 {
			t.Fatalf("image has history: %d ops", img.OpCount())
		}
		if !sameFiles(img, img.CrashImage(DropAll, 0)) {
			t.Fatal("image holds unsynced state")
		}
		if _, err := img.Lock("/vol/lock"); err != nil {
			t.Fatalf("image kept the lock: %v", err)
		}
	})
}
