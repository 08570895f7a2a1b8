package store

/*
#include <stdint.h>
#include <stdlib.h>
#include "sqlite_abi.h"
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/layout"
)

// vfsName is the name the shim registers with SQLite.
const vfsName = "ejectsafe"

// SQLite's codes and flags the Go half exchanges with the shim, from
// sqlite_abi.h and shim.h: C's definitions are the only ones.
const (
	sqliteOK       = C.SQLITE_OK
	sqliteBusy     = C.SQLITE_BUSY
	sqliteFull     = C.SQLITE_FULL
	sqliteCantOpen = C.SQLITE_CANTOPEN
	sqliteIOErr    = C.SQLITE_IOERR
	ioerrRead      = C.SQLITE_IOERR_READ
	ioerrShortRead = C.SQLITE_IOERR_SHORT_READ
	ioerrWrite     = C.SQLITE_IOERR_WRITE
	ioerrFsync     = C.SQLITE_IOERR_FSYNC
	ioerrTruncate  = C.SQLITE_IOERR_TRUNCATE
	ioerrFstat     = C.SQLITE_IOERR_FSTAT
	ioerrDelete    = C.SQLITE_IOERR_DELETE
	ioerrAccess    = C.SQLITE_IOERR_ACCESS
	notMine        = C.ES_NOT_MINE // not a Store's file: the platform VFS takes it
	openFlagCreate = C.SQLITE_OPEN_CREATE
	accessExists   = C.SQLITE_ACCESS_EXISTS
	kindMain       = C.ES_KIND_MAIN
	kindJournal    = C.ES_KIND_JOURNAL
	fcntlSizeHint  = C.SQLITE_FCNTL_SIZE_HINT
	fcntlCkptDone  = C.SQLITE_FCNTL_CKPT_DONE
	fcntlCkptStart = C.SQLITE_FCNTL_CKPT_START
)

const (
	cJournalSuffix    = C.ES_JOURNAL_SUFFIX // the C half's own copies, checked
	cWALSuffix        = C.ES_WAL_SUFFIX     // against layout by TestLayout_cNames
	journalSuffix     = layout.RollbackSuffix
	lockSuffix        = layout.LockSuffix
	walSuffix         = layout.WALSuffix
	shmSuffix         = layout.SharedMemorySuffix
	registerFailedFmt = "store: register VFS: SQLite code %d"
)

var registerOnce = sync.OnceValue(func() error {
	if rc := C.es_register(); rc != sqliteOK {
		return fmt.Errorf(registerFailedFmt, int(rc))
	}
	return nil
})

// vfsFile is what a Go handle names: a connection's main file or journal.
type vfsFile interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) error
	Truncate(size int64) error
	Sync() error
	Size() (int64, error)
	fileControl(op int, arg int64) error
	close() error
	db() *dbState
}

// goCallbacks counts the shim's calls into Go (the esGo* functions), so
// a test can show that the commit path makes none.
var goCallbacks atomic.Int64

// idTable names Go values by the ids C holds: C never holds Go pointers.
type idTable[T comparable] struct {
	mu   sync.RWMutex
	m    map[uint64]T
	next uint64
}

func (t *idTable[T]) add(v T) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[uint64]T)
	}
	t.next++
	t.m[t.next] = v
	return t.next
}

// get returns the value of id, the zero T when there is none.
func (t *idTable[T]) get(id uint64) T {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[id]
}

// take removes id and returns its value.
func (t *idTable[T]) take(id uint64) T {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.m[id]
	delete(t.m, id)
	return v
}

// files are the Go files (main-file connections, journals) the shim's
// es_file's h fields name.
var files idTable[vfsFile]

func addHandle(f vfsFile) uint64 { return files.add(f) }

func handle(h C.uint64_t) vfsFile { return files.get(uint64(h)) }

// dbStates are the Go halves of the databases open Stores registered
// with the shim, named by the owner id C's registry keeps for each
// (es_dbstate.owner). That registry, keyed by path, is the only one: the
// Go callbacks are handed the owner, never a path to look up.
var dbStates idTable[*dbState]

// register enters d in the shim's registry (es_db_acquire) with the
// WAL's cap and retained size. Another Store of d.path in this process
// is ErrAlreadyOpen.
func (d *dbState) register(maxWAL, retainWAL int64) error {
	id := dbStates.add(d)
	cs := C.CString(d.path)
	defer C.free(unsafe.Pointer(cs))
	switch rc := C.es_db_acquire(cs, C.uint64_t(id), C.longlong(maxWAL), C.longlong(retainWAL)); rc {
	case sqliteOK:
		d.id = id
		return nil
	case sqliteBusy:
		dbStates.take(id)
		return ErrAlreadyOpen
	default:
		dbStates.take(id)
		return fmt.Errorf("store: in-memory state for %s: SQLite code %d", d.path, int(rc))
	}
}

// unregister undoes register (es_db_release): the shim's state of the
// database stays while its WAL holds data, with no owner.
func (d *dbState) unregister() {
	cs := C.CString(d.path)
	defer C.free(unsafe.Pointer(cs))
	C.es_db_release(cs)
	dbStates.take(d.id)
}

// mainConn is one connection's handle on the shared main file.
type mainConn struct{ d *dbState }

func (c mainConn) ReadAt(p []byte, off int64) (int, error) { return c.d.main.ReadAt(p, off) }
func (c mainConn) Size() (int64, error)                    { return c.d.main.Size() }
func (c mainConn) close() error                            { return nil }
func (c mainConn) db() *dbState                            { return c.d }

// errAbandoned refuses writes to an abandoned Store's main file: the
// checkpoint SQLite runs when the last connection closes must not reach
// the drive (which may hang, or be gone).
var errAbandoned = errors.New("store: abandoned: main file writes refused")

func (c mainConn) WriteAt(p []byte, off int64) error {
	if c.d.abandoned.Load() {
		return errAbandoned
	}
	return c.d.main.WriteAt(p, off)
}

func (c mainConn) Truncate(size int64) error {
	if c.d.abandoned.Load() {
		return errAbandoned
	}
	return c.d.main.Truncate(size)
}

func (c mainConn) Sync() error {
	if err := c.d.writable(); err != nil {
		return err
	}
	if c.d.deferSync.Load() {
		return nil // the Store commits right after (gate.go)
	}
	return c.d.hl.commit(c.d.main, c.d.main.Sync)
}

func (c mainConn) fileControl(op int, arg int64) error {
	if c.d.abandoned.Load() && (op == fcntlCkptStart || op == fcntlCkptDone || op == fcntlSizeHint) {
		return errAbandoned
	}
	switch op {
	case fcntlCkptStart:
		return c.d.main.CheckpointStart()
	case fcntlCkptDone:
		return c.d.main.CheckpointDone()
	case fcntlSizeHint:
		return c.d.main.SizeHint(arg)
	}
	return nil
}

// journalFile is a rollback journal on the drive, through device.FS.
type journalFile struct {
	f device.File
	d *dbState
}

func (j journalFile) ReadAt(p []byte, off int64) (int, error) { return j.f.ReadAt(p, off) }
func (j journalFile) WriteAt(p []byte, off int64) error {
	_, err := j.f.WriteAt(p, off)
	return err
}
func (j journalFile) Truncate(size int64) error           { return j.f.Truncate(size) }
func (j journalFile) Sync() error                         { return j.f.Sync() }
func (j journalFile) Size() (int64, error)                { return j.f.Size() }
func (j journalFile) fileControl(op int, arg int64) error { return nil }
func (j journalFile) close() error                        { return j.f.Close() }
func (j journalFile) db() *dbState                        { return j.d }

// fail records err as the device error behind an SQLite code and returns
// the code: SQLite keeps only the code, the Store reports the cause.
func fail(f vfsFile, code int, err error) C.int {
	if errors.Is(err, syscall.ENOSPC) {
		code = sqliteFull
	}
	if f != nil {
		f.db().noteErr(err)
	}
	return C.int(code)
}

//export esGoOpen
func esGoOpen(db C.uint64_t, name *C.char, flags C.int, kind C.int, h *C.uint64_t) C.int {
	goCallbacks.Add(1)
	path := C.GoString(name)
	d := dbStates.get(uint64(db))
	switch kind {
	case kindMain:
		if d == nil || d.main == nil {
			return sqliteCantOpen // no Store, or one still opening
		}
		*h = C.uint64_t(addHandle(mainConn{d}))
		return sqliteOK
	case kindJournal:
		if d == nil {
			return notMine
		}
		f, err := d.fs.Open(path, device.ReadWrite)
		if errors.Is(err, fs.ErrNotExist) && flags&openFlagCreate != 0 {
			f, err = d.fs.Create(path, 0o644)
		}
		if err != nil {
			d.noteErr(err)
			return sqliteCantOpen
		}
		*h = C.uint64_t(addHandle(journalFile{f, d}))
		return sqliteOK
	}
	return sqliteCantOpen
}

//export esGoClose
func esGoClose(h C.uint64_t) C.int {
	goCallbacks.Add(1)
	f := files.take(uint64(h))
	if f == nil {
		return sqliteOK
	}
	if err := f.close(); err != nil {
		return fail(f, sqliteIOErr, err)
	}
	return sqliteOK
}

//export esGoRead
func esGoRead(h C.uint64_t, p unsafe.Pointer, n C.int, off C.longlong) C.int {
	goCallbacks.Add(1)
	f := handle(h)
	buf := unsafe.Slice((*byte)(p), int(n))
	got, err := f.ReadAt(buf, int64(off))
	if got < len(buf) {
		// SQLite's contract: zero the rest and say SHORT_READ.
		clear(buf[got:])
		if err == nil || err == io.EOF {
			return ioerrShortRead
		}
	}
	if err != nil && err != io.EOF {
		return fail(f, ioerrRead, err)
	}
	return sqliteOK
}

//export esGoWrite
func esGoWrite(h C.uint64_t, p unsafe.Pointer, n C.int, off C.longlong) C.int {
	goCallbacks.Add(1)
	f := handle(h)
	if err := f.WriteAt(unsafe.Slice((*byte)(p), int(n)), int64(off)); err != nil {
		return fail(f, ioerrWrite, err)
	}
	return sqliteOK
}

//export esGoTruncate
func esGoTruncate(h C.uint64_t, size C.longlong) C.int {
	goCallbacks.Add(1)
	f := handle(h)
	if err := f.Truncate(int64(size)); err != nil {
		return fail(f, ioerrTruncate, err)
	}
	return sqliteOK
}

//export esGoSync
func esGoSync(h C.uint64_t, flags C.int) C.int {
	goCallbacks.Add(1)
	f := handle(h)
	if err := f.Sync(); err != nil {
		return fail(f, ioerrFsync, err)
	}
	return sqliteOK
}

//export esGoFileSize
func esGoFileSize(h C.uint64_t, size *C.longlong) C.int {
	goCallbacks.Add(1)
	f := handle(h)
	n, err := f.Size()
	if err != nil {
		return fail(f, ioerrFstat, err)
	}
	*size = C.longlong(n)
	return sqliteOK
}

//export esGoFileControl
func esGoFileControl(h C.uint64_t, op C.int, arg C.longlong) C.int {
	goCallbacks.Add(1)
	f := handle(h)
	if err := f.fileControl(int(op), int64(arg)); err != nil {
		return fail(f, sqliteIOErr, err)
	}
	return sqliteOK
}

//export esGoDelete
func esGoDelete(db C.uint64_t, name *C.char, syncDir C.int) C.int {
	goCallbacks.Add(1)
	path := C.GoString(name)
	d := dbStates.get(uint64(db)) // the shim sends only journals' names
	if d == nil {
		return notMine
	}
	// Always make the deletion durable, whatever SQLite's syncDir says
	// (it asks only at synchronous=EXTRA): a rollback journal that comes
	// back after a power cut is hot, and would be rolled back over the
	// checkpoints that followed its deletion.
	if err := device.Remove(d.fs, path); err != nil {
		d.noteErr(err)
		return ioerrDelete
	}
	return sqliteOK
}

//export esGoAccess
func esGoAccess(db C.uint64_t, name *C.char, flags C.int, res *C.int) C.int {
	goCallbacks.Add(1)
	path := C.GoString(name)
	d := dbStates.get(uint64(db)) // name is its main file or its journal
	if d == nil {
		return notMine
	}
	fi, err := d.fs.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		*res = 0
	case err != nil:
		d.noteErr(err)
		return ioerrAccess
	case flags == accessExists:
		// As os_unix.c: an empty regular file counts as absent.
		*res = boolInt(!fi.Mode().IsRegular() || fi.Size() > 0)
	default:
		*res = boolInt(fi.Mode().Perm()&0o200 != 0)
	}
	return sqliteOK
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// walStats reads the in-memory WAL's counters.
func walStats(path string) (st C.es_wal_stats, ok bool) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	ok = C.es_wal_stat(cs, &st) != 0
	return st, ok
}

func walLoad(path string, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	if rc := C.es_wal_load(cs, unsafe.Pointer(&data[0]), C.longlong(len(data))); rc != sqliteOK {
		return fmt.Errorf("store: load WAL of %s into memory: SQLite code %d", path, int(rc))
	}
	return nil
}

func walDiscard(path string) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	C.es_wal_discard(cs)
}

// lockState reads the in-process main-file lock table (for tests).
// shmSelftest runs the shim's checks of its wal-index lock slots
// (es_shm_selftest): 0, or the number of the first check that failed.
func shmSelftest() int { return int(C.es_shm_selftest()) }

func lockState(path string) (nShared, eLock, nShmUser int, ok bool) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var a, b, c C.int
	ok = C.es_lock_state(cs, &a, &b, &c) != 0
	return int(a), int(b), int(c), ok
}

// setGate sets the shim's gate for new transactions on path (es_gate in
// shim.c): closed 1 closes it, 0 opens it, -1 leaves it; highwater > 0
// closes it while the WAL is larger, 0 turns that off, -1 leaves it.
func setGate(path string, closed int, highwater int64) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	C.es_gate(cs, C.int(closed), C.longlong(highwater))
}

// gateLimit bounds how long a new transaction on path waits at the gate,
// and forgets the longest wait (es_gate_limit).
func gateLimit(path string, d time.Duration) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	C.es_gate_limit(cs, C.longlong(d.Milliseconds()))
}

// gateLongest reports the longest a transaction on path waited at the
// gate since gateLimit, to the millisecond.
func gateLongest(path string) time.Duration {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return time.Duration(C.es_gate_longest(cs)) * time.Millisecond
}

// gateMark reports the gate's high-water mark on path: 0 when off
// (es_gate_mark; for tests).
func gateMark(path string) int64 {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return int64(C.es_gate_mark(cs))
}

// fcntlNoGate is the shim's file-control opcode that lets a connection
// pass the gate without waiting (ES_FCNTL_NOGATE).
const fcntlNoGate = C.ES_FCNTL_NOGATE

// gateQuiet reports whether no connection to path holds the WAL writer
// lock or a reader lock.
func gateQuiet(path string) bool {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return C.es_gate_quiet(cs) != 0
}

// walCut with cut true makes every later write to path's in-memory WAL
// fail (SQLITE_READONLY): nothing commits after it; false lets writes in
// again. Open's register clears it.
func walCut(path string, cut bool) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	C.es_wal_cut(cs, C.int(boolInt(cut)))
}

// writerBusy reports whether a connection to path holds the WAL writer
// lock.
func writerBusy(path string) bool {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return C.es_writer_busy(cs) != 0
}
