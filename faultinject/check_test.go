package faultinject

import (
	"path"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
)

const (
	dbPath      = "/vol/app.db"
	tmpPath     = "/vol/app.db.tmp"
	journalPath = "/vol/app.db.journal"
)

// decodeToy reads journal writes of the form "<kind> <gen> <path>\n".
func decodeToy(data []byte) []Claim {
	var claims []Claim
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] == "began" {
			continue
		}
		gen, _ := strconv.ParseUint(f[1], 10, 64)
		claims = append(claims, Claim{Kind: f[0], Gen: gen, Path: f[2]})
	}
	return claims
}

var toyConfig = CheckConfig{DBPath: dbPath, JournalPath: journalPath, DecodeClaim: decodeToy}

// checkpointSteps is the correct checkpoint sequence, with hooks to break
// it: skip names steps to leave out, extra runs before a named step.
type checkpointSteps struct {
	skip  map[string]bool
	extra map[string]func(f *FS, tmp, journal device.File)
}

func (c checkpointSteps) run(t *testing.T) []Event {
	t.Helper()
	f := newVol(t, Options{})
	mustWriteFile(t, f, dbPath, "old")
	mustWriteFile(t, f, journalPath, "")
	db := mustOpen(t, f, dbPath, device.ReadOnly)
	_, _ = db.ReadAt(make([]byte, 3), 0)
	tmp := mustCreate(t, f, tmpPath)
	j := mustOpen(t, f, journalPath, device.ReadWrite)
	var jo int64
	record := func(s string) {
		mustWrite(t, j, jo, s)
		jo += int64(len(s))
	}
	step := func(name string, fn func()) {
		if hook := c.extra[name]; hook != nil {
			hook(f, tmp, j)
		}
		if !c.skip[name] {
			fn()
		}
	}
	step("began", func() { record("began 1 -\n") })
	step("copy", func() { mustWrite(t, tmp, 0, "new") })
	step("sync copy", func() { mustSync(t, tmp) })
	step("ready", func() { record("ready 1 " + tmpPath + "\n") })
	step("sync ready", func() { mustSync(t, j) })
	step("rename", func() { mustOK(t, f.Rename(tmpPath, dbPath)) })
	step("syncdir", func() { mustOK(t, f.SyncDir("/vol")) })
	step("done", func() { record("done 1 " + dbPath + "\n") })
	step("sync done", func() { mustSync(t, j) })
	step("end", func() {})
	_ = tmp.Close()
	_ = j.Close()
	_ = db.Close()
	return f.Trace()
}

func violationKinds(vs []Violation) []ViolationKind {
	var out []ViolationKind
	for _, v := range vs {
		out = append(out, v.Kind)
	}
	return out
}

func TestCheck(t *testing.T) {
	t.Run("the correct sequence passes", func(t *testing.T) {
		if vs := Check(checkpointSteps{}.run(t), toyConfig); len(vs) != 0 {
			t.Fatalf("violations: %v", vs)
		}
	})
	for _, tc := range []struct {
		name  string
		steps checkpointSteps
		cfg   CheckConfig
		want  []ViolationKind
	}{
		{
			name:  "copy renamed before its fsync",
			steps: checkpointSteps{skip: map[string]bool{"sync copy": true}},
			cfg:   CheckConfig{DBPath: dbPath},
			want:  []ViolationKind{RenameUnsynced},
		},
		{
			name: "copy written again after its fsync",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"rename": func(_ *FS, tmp, _ device.File) { mustWrite(t, tmp, 3, "!") }}},
			cfg:  CheckConfig{DBPath: dbPath},
			want: []ViolationKind{RenameUnsynced},
		},
		{
			name:  "ready claimed before the copy is fsynced",
			steps: checkpointSteps{skip: map[string]bool{"sync copy": true}},
			cfg:   toyConfig,
			want:  []ViolationKind{ClaimNotDurable, RenameUnsynced},
		},
		{
			name:  "rename before the ready record is synced",
			steps: checkpointSteps{skip: map[string]bool{"sync ready": true}},
			cfg:   toyConfig,
			want:  []ViolationKind{RenameBeforeReady},
		},
		{
			name:  "rename without a ready record",
			steps: checkpointSteps{skip: map[string]bool{"ready": true}},
			cfg:   toyConfig,
			want:  []ViolationKind{RenameBeforeReady},
		},
		{
			name:  "done claimed before the directory fsync",
			steps: checkpointSteps{skip: map[string]bool{"syncdir": true}},
			cfg:   toyConfig,
			want:  []ViolationKind{ClaimNotDurable},
		},
		{
			name: "unknown claim kind",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"end": func(_ *FS, _, j device.File) { mustWrite(t, j, 1000, "redy 1 /vol/x\n") }}},
			cfg:  toyConfig,
			want: []ViolationKind{UnknownClaim},
		},
		{
			name: "database opened for writing",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"end": func(f *FS, _, _ device.File) {
					h := mustOpen(t, f, dbPath, device.ReadWrite)
					mustWrite(t, h, 0, "x")
					mustOK(t, h.Truncate(1))
				}}},
			cfg:  toyConfig,
			want: []ViolationKind{InPlaceOpen, InPlaceWrite, InPlaceWrite},
		},
		{
			name: "in-place mode allowed",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"end": func(f *FS, _, _ device.File) {
					mustWrite(t, mustOpen(t, f, dbPath, device.ReadWrite), 0, "x")
				}}},
			cfg: CheckConfig{DBPath: dbPath, AllowInPlace: true},
		},
		{
			name: "copy written through its handle after the rename",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"end": func(_ *FS, tmp, _ device.File) { mustWrite(t, tmp, 0, "x") }}},
			cfg:  toyConfig,
			want: []ViolationKind{InPlaceWrite},
		},
		{
			name: "database created in place",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"end": func(f *FS, _, _ device.File) {
					mustOK(t, f.Remove(dbPath))
					mustCreate(t, f, dbPath)
				}}},
			cfg:  toyConfig,
			want: []ViolationKind{InPlaceOpen},
		},
		{
			name: "fsync retried after a failure",
			steps: checkpointSteps{extra: map[string]func(*FS, device.File, device.File){
				"sync copy": func(f *FS, tmp, _ device.File) {
					mustOK(t, f.Inject(Fail(syscall.EIO).On(OpSync)))
					if err := tmp.Sync(); err == nil {
						t.Fatal("injected Sync failure did not fire")
					}
				}}},
			cfg:  CheckConfig{DBPath: dbPath},
			want: []ViolationKind{SyncRetry, RenameUnsynced},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := Check(tc.steps.run(t), tc.cfg)
			if got := violationKinds(vs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("violations %v, want %v:\n%v", got, tc.want, vs)
			}
			for _, v := range vs {
				if s := v.String(); !strings.Contains(s, v.Kind.String()) || !strings.Contains(s, "op #") {
					t.Fatalf("unreadable violation %q", s)
				}
			}
		})
	}
	t.Run("hand-made trace", func(t *testing.T) {
		trace := []Event{
			{Index: 0, Kind: OpCreate, Path: "/v/t", Inode: 7, Handle: 1},
			{Index: 1, Kind: OpWriteAt, Path: "/v/t", Inode: 7, Handle: 1, Len: 4},
			{Index: 2, Kind: OpSync, Path: "/v/t", Inode: 7, Handle: 1, Err: syscall.EIO},
			{Index: 3, Kind: OpOpen, Path: "/v/t", Inode: 7, Handle: 2},
			{Index: 4, Kind: OpSync, Path: "/v/t", Inode: 7, Handle: 2},
			{Index: 5, Kind: OpRename, Path: "/v/t", NewPath: "/v/db", Inode: 7},
		}
		got := violationKinds(Check(trace, CheckConfig{DBPath: "/v/db"}))
		// The retry through a fresh handle succeeded but proves nothing.
		if want := []ViolationKind{SyncRetry, RenameUnsynced}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

const logPath = "/vol/app.db-wal"

var logConfig = CheckConfig{DBPath: dbPath, JournalPath: journalPath, DecodeClaim: decodeToy, LogPath: logPath}

// inPlaceSteps is an in-place checkpoint, twice (the second one only
// writes the database, to see a log left over from the first), with the
// names of steps to leave out.
func inPlaceSteps(t *testing.T, skip map[string]bool) []Event {
	t.Helper()
	f := newVol(t, Options{})
	mustWriteFile(t, f, dbPath, "old")
	mustWriteFile(t, f, journalPath, "")
	j := mustOpen(t, f, journalPath, device.ReadWrite)
	var jo int64
	record := func(s string) {
		mustWrite(t, j, jo, s)
		jo += int64(len(s))
	}
	step := func(name string, fn func()) {
		if !skip[name] {
			fn()
		}
	}
	record("began 1 -\n")
	var log device.File
	step("create log", func() {
		log = mustCreate(t, f, logPath)
		mustWrite(t, log, 0, "new")
	})
	step("sync log", func() { mustSync(t, log) })
	if log != nil {
		mustOK(t, log.Close())
	}
	step("syncdir log", func() { mustOK(t, f.SyncDir("/vol")) })
	db := mustOpen(t, f, dbPath, device.ReadWrite)
	mustWrite(t, db, 0, "new")
	mustSync(t, db)
	step("remove log", func() { mustOK(t, f.Remove(logPath)) })
	step("syncdir remove", func() { mustOK(t, f.SyncDir("/vol")) })
	step("done", func() {
		record("done 1 " + dbPath + "\n")
		mustSync(t, j)
	})
	step("second", func() { mustWrite(t, db, 0, "2nd") })
	_ = db.Close()
	step("copy", func() { // a copy checkpoint after it: the new file renamed over the database
		tmp := mustCreate(t, f, tmpPath)
		mustWrite(t, tmp, 0, "cpy")
		mustSync(t, tmp)
		mustOK(t, tmp.Close())
		record("ready 2 " + tmpPath + "\n")
		mustSync(t, j)
		mustOK(t, f.Rename(tmpPath, dbPath))
	})
	_ = j.Close()
	return f.Trace()
}

// TestCheck_logPath: with LogPath, writing the database in place is
// allowed behind a durable log, and a log that outlives its checkpoint is
// reported.
func TestCheck_logPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		skip []string
		cfg  CheckConfig
		want []ViolationKind
	}{
		{"the correct sequence passes", []string{"second", "copy"}, logConfig, nil},
		{"without LogPath the in-place rules apply", []string{"second", "copy"}, toyConfig, []ViolationKind{InPlaceOpen, InPlaceWrite}},
		{"no log", []string{"create log", "sync log", "syncdir log", "remove log", "syncdir remove", "second", "copy"}, logConfig, []ViolationKind{LogNotDurable}},
		{"log not fsynced", []string{"sync log", "second", "copy"}, logConfig, []ViolationKind{LogNotDurable}},
		{"log's entry not fsynced", []string{"syncdir log", "second", "copy"}, logConfig, []ViolationKind{LogNotDurable}},
		{"done before the log's removal is durable", []string{"syncdir remove", "second", "copy"}, logConfig, []ViolationKind{StaleLog}},
		{"log kept past done, then the database written", []string{"remove log", "syncdir remove", "copy"}, logConfig, []ViolationKind{StaleLog}},
		{"the database written again with no log", []string{"copy"}, logConfig, []ViolationKind{LogNotDurable}},
		{"a copy renamed over after the log is gone", []string{"second"}, logConfig, nil},
		{"a copy renamed over while the log is linked, no done", []string{"remove log", "syncdir remove", "second", "done"}, logConfig, []ViolationKind{StaleLog}},
		{"a copy renamed over before the log's removal is durable, no done", []string{"syncdir remove", "second", "done"}, logConfig, []ViolationKind{StaleLog}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skip := map[string]bool{}
			for _, s := range tc.skip {
				skip[s] = true
			}
			vs := Check(inPlaceSteps(t, skip), tc.cfg)
			if got := violationKinds(vs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v\n%v", got, tc.want, vs)
			}
		})
	}
}

// retiredSteps is an in-place checkpoint that retires its log by zeroing
// its header instead of removing it, then a second one that writes its
// log into the same file, then a copy checkpoint, with the names of
// steps to leave out.
func retiredSteps(t *testing.T, skip map[string]bool) []Event {
	t.Helper()
	f := newVol(t, Options{})
	mustWriteFile(t, f, dbPath, "old")
	mustWriteFile(t, f, journalPath, "")
	j := mustOpen(t, f, journalPath, device.ReadWrite)
	var jo int64
	record := func(s string) {
		mustWrite(t, j, jo, s)
		jo += int64(len(s))
	}
	step := func(name string, fn func()) {
		if !skip[name] {
			fn()
		}
	}
	header := strings.Repeat("h", 32)
	record("began 1 -\n")
	log := mustCreate(t, f, logPath)
	mustWrite(t, log, 0, header+"frames")
	mustSync(t, log)
	mustOK(t, log.Close())
	mustOK(t, f.SyncDir("/vol"))
	db := mustOpen(t, f, dbPath, device.ReadWrite)
	mustWrite(t, db, 0, "new")
	step("sync db", func() { mustSync(t, db) })
	// "fail retire" and "fail reuse": that write over the log's header
	// fails (it may have landed in part).
	write := func(h device.File, data, fail string) {
		if !skip[fail] {
			mustWrite(t, h, 0, data)
			return
		}
		if err := f.Inject(Fail(syscall.EIO).On(OpWriteAt).Matching(path.Base(logPath))); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt([]byte(data), 0); err == nil {
			t.Fatal("the injected failure did not fire")
		}
	}
	var rl device.File
	step("retire", func() {
		rl = mustOpen(t, f, logPath, device.ReadWrite)
		write(rl, string(make([]byte, 32)), "fail retire")
	})
	step("sync retire", func() { mustSync(t, rl) })
	if rl != nil {
		mustOK(t, rl.Close())
	}
	step("done", func() {
		record("done 1 " + dbPath + "\n")
		mustSync(t, j)
	})
	var nl device.File
	step("reuse", func() {
		nl = mustOpen(t, f, logPath, device.ReadWrite)
		write(nl, header+"other", "fail reuse")
	})
	step("sync reuse", func() { mustSync(t, nl) })
	if nl != nil {
		mustOK(t, nl.Close())
	}
	step("second", func() { mustWrite(t, db, 0, "2nd") })
	_ = db.Close()
	step("copy", func() {
		tmp := mustCreate(t, f, tmpPath)
		mustWrite(t, tmp, 0, "cpy")
		mustSync(t, tmp)
		mustOK(t, tmp.Close())
		record("ready 2 " + tmpPath + "\n")
		mustSync(t, j)
		mustOK(t, f.Rename(tmpPath, dbPath))
	})
	_ = j.Close()
	return f.Trace()
}

// TestCheck_logRetired: a log retired in place (zeros over its header,
// synced) describes no checkpoint, a header written into it again makes
// it a log again, and neither step may be skipped.
func TestCheck_logRetired(t *testing.T) {
	for _, tc := range []struct {
		name string
		skip []string
		want []ViolationKind
	}{
		{"retired, reused, then a copy", []string{"copy"}, nil},
		{"retired, then a copy", []string{"reuse", "sync reuse", "second"}, nil},
		{"retirement not synced at done", []string{"sync retire", "reuse", "sync reuse", "second", "copy"}, []ViolationKind{StaleLog}},
		{"not retired, the database written with no new log", []string{"retire", "sync retire", "reuse", "sync reuse", "copy"}, []ViolationKind{StaleLog}},
		{"retired, the database written with no new log", []string{"reuse", "sync reuse", "copy"}, []ViolationKind{LogNotDurable}},
		{"reused log not synced before the database is written", []string{"sync reuse", "copy"}, []ViolationKind{LogNotDurable}},
		{"a copy renamed over a reused log", []string{"second"}, []ViolationKind{StaleLog}},
		{"a copy renamed over a log not retired", []string{"retire", "sync retire", "reuse", "sync reuse", "second"}, []ViolationKind{StaleLog}},
		{"retired before the database's pages are synced", []string{"sync db", "reuse", "sync reuse", "second", "copy"}, []ViolationKind{LogRetiredEarly, LogRetiredEarly}},
		{"the retirement's write failed, then the database written", []string{"fail retire", "reuse", "sync reuse", "copy"}, []ViolationKind{LogNotDurable, StaleLog}},
		{"the reused log's header write failed, then the database written", []string{"fail reuse", "copy"}, []ViolationKind{LogNotDurable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skip := map[string]bool{}
			for _, s := range tc.skip {
				skip[s] = true
			}
			vs := Check(retiredSteps(t, skip), logConfig)
			if got := violationKinds(vs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v\n%v", got, tc.want, vs)
			}
		})
	}
}
