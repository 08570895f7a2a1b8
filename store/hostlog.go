package store

/*
#include <stdlib.h>
#include "shim.h"
#include "hostlog.h"
*/
import "C"

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/layout"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/probe"
)

// The host log: the WAL's bytes in a file on the host's own disk
// (issue 13), so that an application crash loses no committed
// transaction while the drive still sees no byte between checkpoints.
//
// File "<HostDir>/<db base name>-<16 hex of sha256(db path)>.eslog",
// mode 0600 in a directory 0700, both owned by the user:
//
//	offset  size  what
//	0       512   header slot 0
//	512     512   header slot 1
//	1024    64512 unused (zero)
//	65536   ...   the WAL, byte for byte as SQLite wrote it (hostlog.c
//	              maps it in 1 MiB chunks, shared)
//
// A header slot (little endian):
//
//	0    8   magic "ESHLOG2\n"
//	8    8   seq: the slot with the larger valid seq is the header
//	16   8   journal id   } the database on the drive the WAL applies to:
//	24   8   generation   } checkpoint.Identity of its last durable
//	32   8   size         } checkpoint
//	40   8   checksum     }
//	48   1   checksum known (0/1)
//	49   1   level: 1 HostLog, 2 HostSync
//	50   2   path length (bytes of the path that fit)
//	52   4   inflight: drive commits begun since generation (one may
//	         have reached the drive; only the pending one below is
//	         provably this log's)
//	56   8   created, Unix ns
//	64   8   updated, Unix ns
//	72   40  boot id of the host that wrote it
//	112  312 database path (informative; truncated)
//	424  8   earlier generation } the Ready record of an earlier drive
//	432  8   earlier size       } commit of this log's that failed and
//	440  8   earlier checksum   } may have reached the drive (0: none)
//	448  24  zero
//	472  8   pending generation } the Ready record of the drive commit in
//	480  8   pending size       } flight (0: none), written before that
//	488  8   pending checksum   } record
//	496  8   zero
//	504  8   CRC-64 (ECMA) of bytes 0..503
//
// Past the base, a replay accepts only a generation this log's process
// recorded (pending or earlier) before writing it: each is the base with
// a prefix of the log's frames checkpointed into it, so the whole WAL
// applies over it as over the base (proveHostLog).
//
// A slot is valid when (1) its magic matches, (2) its CRC matches, (3)
// its level is 1 or 2 and (4) its path length fits. The header is
// written to the slot not holding the current one, so a write torn by a
// crash leaves the previous header valid.
//
// Why the WAL applies: the frames in the log are the WAL SQLite kept
// since it last restarted it, which it does only once every frame was
// backfilled and made durable on the drive (Checkpoint's xSync; with a
// host log the gate's rewind does not defer it). So the database at the
// recorded generation, or at any generation a checkpoint of a prefix of
// these frames made, plus the log, is the last committed state: SQLite's
// own WAL recovery (salts, checksums) finds the committed frames.
const (
	hlHeader    = 65536
	hlSlot      = 512
	hlMagic     = "ESHLOG2\n"
	hlPathMax   = 312
	hlSuffix    = layout.HostLogSuffix
	hlKeptInfix = layout.HostLogKeptInfix
	// hlAbandoning is the name Abandon gives a log during SQLite's close
	// (store.go, abandon); a process that died in that window leaves it.
	hlAbandoning = layout.HostLogAbandoningSuffix
	// hlMoving is the new file a log moves to after a failed flush
	// (hostlog.c's ES_HL_MOVING), until the rename over the log's name.
	hlMoving = C.ES_HL_MOVING
)

// Durability says what a commit survives once Commit returned.
type Durability int

const (
	// DurabilityDefault is the zero value: HostLog where the platform
	// supports it, else Checkpoint.
	DurabilityDefault Durability = iota
	// Checkpoint keeps the WAL in memory only: an application crash, a
	// host power cut or a drive pull loses the commits since the last
	// checkpoint (1-5 s by default). Nothing about the database is
	// written on the host's disk.
	Checkpoint
	// HostLog keeps the WAL in a file on the host's own disk (HostDir),
	// as a shared mapping: an application crash loses nothing; the next
	// Open replays the log. A host power cut or a reboot loses the
	// commits since the last checkpoint (the log is then kept aside,
	// never applied). DANGER: the database's recent pages stay readable
	// in that file until the Store closes cleanly.
	HostLog
	// HostSync is HostLog with each commit also flushed to the host's
	// disk (SQLite's synchronous=FULL on the log): a host power cut
	// loses nothing either.
	HostSync
)

func (d Durability) String() string {
	switch d {
	case DurabilityDefault:
		return "default"
	case Checkpoint:
		return "checkpoint"
	case HostLog:
		return "hostlog"
	case HostSync:
		return "hostsync"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// HostDirEnv names the environment variable that, when set, replaces
// the default host-log directory (Options.HostDir empty): for a portable
// application that wants its logs elsewhere, and for test suites.
const HostDirEnv = "EJECTSAFE_HOST_DIR"

// defaultDurability is what DurabilityDefault means (see BENCHMARKS.md
// for why).
var defaultDurability = HostLog

// hostLog is a Store's open host log: the Go half, which owns the header.
// The WAL bytes belong to the shim (es_wal_attach took its own fd).
type hostLog struct {
	path  string
	f     *os.File // header writes; the same file the shim maps
	level Durability
	boot  string
	db    string

	mu       sync.Mutex
	seq      uint64
	base     checkpoint.Identity
	inflight uint32
	pending  journal.Record // the Ready of the commit in flight (Gen 0: none)
	earlier  journal.Record // the Ready of a failed commit that may have reached the drive
	created  time.Time
	fresh    bool // this Open created the file (empty): an Open that fails may remove it
	// attached: the shim maps the log; header writes go through its fd
	// (es_wal_head), since a failed flush moves the log to a new file.
	attached bool
	moves    int64 // such moves seen by writeHead
}

// hlHead is one decoded header slot.
type hlHead struct {
	seq      uint64
	id       checkpoint.Identity
	level    Durability
	inflight uint32
	pending  journal.Record
	earlier  journal.Record
	created  time.Time
	updated  time.Time
	boot     string
	db       string
}

var crcTable = crc64.MakeTable(crc64.ECMA)

func (h hlHead) encode() []byte {
	b := make([]byte, hlSlot)
	copy(b, hlMagic)
	le := binary.LittleEndian
	le.PutUint64(b[8:], h.seq)
	le.PutUint64(b[16:], h.id.JournalID)
	le.PutUint64(b[24:], h.id.Gen)
	le.PutUint64(b[32:], uint64(h.id.Size))
	le.PutUint64(b[40:], h.id.Sum)
	if h.id.SumKnown {
		b[48] = 1
	}
	b[49] = byte(h.level - Checkpoint)
	p := h.db
	if len(p) > hlPathMax {
		p = p[len(p)-hlPathMax:]
	}
	le.PutUint16(b[50:], uint16(len(p)))
	le.PutUint32(b[52:], h.inflight)
	le.PutUint64(b[56:], uint64(h.created.UnixNano()))
	le.PutUint64(b[64:], uint64(h.updated.UnixNano()))
	copy(b[72:112], h.boot)
	copy(b[112:112+hlPathMax], p)
	le.PutUint64(b[424:], h.earlier.Gen)
	le.PutUint64(b[432:], uint64(h.earlier.Size))
	le.PutUint64(b[440:], h.earlier.Sum)
	le.PutUint64(b[472:], h.pending.Gen)
	le.PutUint64(b[480:], uint64(h.pending.Size))
	le.PutUint64(b[488:], h.pending.Sum)
	le.PutUint64(b[504:], crc64.Checksum(b[:504], crcTable))
	return b
}

// decodeSlot decodes one slot, checking the validity conditions above.
func decodeSlot(b []byte) (hlHead, error) {
	var h hlHead
	le := binary.LittleEndian
	switch {
	case len(b) < hlSlot || string(b[:8]) != hlMagic:
		return h, errors.New("bad magic")
	case le.Uint64(b[504:]) != crc64.Checksum(b[:504], crcTable):
		return h, errors.New("bad checksum")
	case b[49] != 1 && b[49] != 2:
		return h, fmt.Errorf("bad level %d", b[49])
	case le.Uint16(b[50:]) > hlPathMax:
		return h, errors.New("bad path length")
	}
	h.seq = le.Uint64(b[8:])
	h.id = checkpoint.Identity{JournalID: le.Uint64(b[16:]), Gen: le.Uint64(b[24:]), Size: int64(le.Uint64(b[32:])), Sum: le.Uint64(b[40:]), SumKnown: b[48] == 1}
	h.level = Checkpoint + Durability(b[49])
	h.inflight = le.Uint32(b[52:])
	h.pending = journal.Record{Kind: journal.Ready, Gen: le.Uint64(b[472:]), Size: int64(le.Uint64(b[480:])), Sum: le.Uint64(b[488:])}
	h.earlier = journal.Record{Kind: journal.Ready, Gen: le.Uint64(b[424:]), Size: int64(le.Uint64(b[432:])), Sum: le.Uint64(b[440:])}
	h.created = time.Unix(0, int64(le.Uint64(b[56:])))
	h.updated = time.Unix(0, int64(le.Uint64(b[64:])))
	h.boot = strings.TrimRight(string(b[72:112]), "\x00")
	h.db = string(b[112 : 112+int(le.Uint16(b[50:]))])
	return h, nil
}

// readHead returns the valid slot with the larger seq.
func readHead(f io.ReaderAt) (hlHead, error) {
	buf := make([]byte, 2*hlSlot)
	if n, err := f.ReadAt(buf, 0); n < len(buf) {
		return hlHead{}, fmt.Errorf("%w: header: %d bytes (%v)", ErrHostLogTorn, n, err)
	}
	a, aerr := decodeSlot(buf[:hlSlot])
	b, berr := decodeSlot(buf[hlSlot:])
	switch {
	case aerr != nil && berr != nil:
		return hlHead{}, fmt.Errorf("%w: header: %v; %v", ErrHostLogTorn, aerr, berr)
	case aerr != nil:
		return b, nil
	case berr != nil || a.seq > b.seq:
		return a, nil
	}
	return b, nil
}

// hostLogName is the log's file name for the database at path.
func hostLogName(path string) string {
	sum := sha256.Sum256([]byte(path))
	base := filepath.Base(path)
	if len(base) > 64 {
		base = base[:64]
	}
	return base + "-" + hex.EncodeToString(sum[:8]) + hlSuffix
}

// hostDir resolves Options.HostDir (default os.UserCacheDir()/ejectsafe),
// creates it 0700 if missing, and refuses one that another user owns,
// that others can enter, or that lives on a removable, network or FUSE
// filesystem.
func hostDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(HostDirEnv)
	}
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("%w: no per-user cache directory: %w", ErrHostDir, err)
		}
		dir = filepath.Join(cache, "ejectsafe")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrHostDir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("%w: %w", ErrHostDir, err)
	}
	if err := checkPrivate(dir, true); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrHostDir, dir, err)
	}
	p, err := probe.Path(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrHostDir, dir, err)
	}
	switch {
	case p.Removable || p.USB:
		return "", fmt.Errorf("%w: %s is on a removable or USB drive (%s)", ErrHostDir, dir, p.Device)
	case p.Class == probe.Network || p.Class == probe.FUSE:
		return "", fmt.Errorf("%w: %s is on a %s filesystem (%s)", ErrHostDir, dir, p.Class, p.FSType)
	}
	return dir, nil
}

// hostLogOpen is the recovery pipeline of a Store's host log, run by Open
// after checkpoint.Recover and before the first connection, with the
// shim's node acquired. It returns the open log and the bytes of WAL the
// shim took from it (a replay when > 0). A log it cannot prove is this
// database's is renamed aside and reported in rep, never applied.
func (s *Store) hostLogOpen(rep *RecoveryReport) (*hostLog, int64, error) {
	if !hlSupported() {
		return nil, 0, ErrHostLogUnsupported
	}
	// 1. The directory: the user's own, on the host's own disk.
	dir, err := hostDir(s.opts.HostDir)
	if err != nil {
		return nil, 0, err
	}
	me, err := lease.Me()
	if err != nil {
		return nil, 0, fmt.Errorf("host log: who am I: %w", err)
	}
	hl := &hostLog{path: filepath.Join(dir, hostLogName(s.path)), level: s.opts.Durability, boot: me.Boot, db: s.path}
	var id checkpoint.Identity
	if m, ok := s.state.main.(checkpointer); ok {
		id = m.Identity()
	}
	// A database the store never committed (stock SQLite made it) has no
	// checksum in a journal: take it now, while this Open holds the lock,
	// so that a replay can prove the drive still holds exactly this base.
	if !id.SumKnown && id.Size > 0 {
		if id.Sum, err = s.sumDB(id.Size); err != nil {
			return nil, 0, fmt.Errorf("host log: checksum of %s: %w", s.path, err)
		}
		id.SumKnown = true
	}

	// 0. A WAL an earlier Store of this process left in the shim (its
	// Close returned ErrWALRetained) is still the WAL, mapped from its log
	// if it had one: keep it, and own that log's header from here on.
	if w, ok := walStats(s.path); ok && w.allocated > 0 {
		f, err := openPrivate(hl.path, false)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, nil // a heap WAL: this Store keeps it in memory
		}
		if err != nil {
			return nil, 0, fmt.Errorf("host log %s: %w", hl.path, err)
		}
		hl.f, hl.created, hl.base, hl.attached = f, time.Now(), id, true
		hl.adoptSeq()
		if err := hl.writeHead(); err != nil {
			f.Close()
			return nil, 0, err
		}
		return hl, 0, nil
	}

	// 2. A log left by an earlier process: prove it, or set it aside.
	// A process that died inside Abandon's rename window left it as
	// <log>.abandoning: it is the log (this Open holds the database's
	// lock, so that process is gone), unless a log is also there, in
	// which case it is set aside, never applied.
	// A process that died while moving its log after a failed flush left
	// <log>.moving: never the log (the rename ends the move).
	os.Remove(hl.path + hlMoving)
	if _, aerr := os.Lstat(hl.path + hlAbandoning); aerr == nil {
		if _, err := os.Lstat(hl.path); errors.Is(err, fs.ErrNotExist) {
			if err := os.Rename(hl.path+hlAbandoning, hl.path); err != nil {
				return nil, 0, fmt.Errorf("host log %s: %w", hl.path+hlAbandoning, err)
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("host log %s: found under %s (an Abandon interrupted)", hl.path, hl.path+hlAbandoning))
		} else if kept, err := setAsideAs(hl.path+hlAbandoning, hl.path); err != nil {
			return nil, 0, fmt.Errorf("host log %s: %w", hl.path+hlAbandoning, err)
		} else {
			rep.KeptAside = append(rep.KeptAside, kept)
			rep.Notes = append(rep.Notes, fmt.Sprintf("host log %s not applied (a log %s is there too), kept as %s", hl.path+hlAbandoning, hl.path, kept))
		}
	}
	f, err := openPrivate(hl.path, false)
	var walBytes int64
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, 0, fmt.Errorf("host log %s: %w", hl.path, err)
	default:
		walBytes, err = s.proveHostLog(f, hl, id)
		if err != nil {
			f.Close()
			kept, rerr := setAside(hl.path)
			if rerr != nil {
				return nil, 0, fmt.Errorf("host log %s: %w; and it could not be set aside: %w", hl.path, err, rerr)
			}
			rep.HostLog = "kept_aside"
			rep.HostLogErr = err
			rep.KeptAside = append(rep.KeptAside, kept)
			rep.Notes = append(rep.Notes, fmt.Sprintf("host log %s not applied, kept as %s: %v", hl.path, kept, err))
			s.opts.Logger.Warn("ejectsafe: host log not applied; kept aside", "db", s.path, "kept", kept, "err", err)
			f, walBytes = nil, 0
		}
	}

	// 3. A new log (or an empty one reused): header first, then the WAL.
	if f == nil {
		if f, err = openPrivate(hl.path, true); err != nil {
			return nil, 0, fmt.Errorf("host log %s: %w", hl.path, err)
		}
		hl.fresh = true
	}
	if walBytes == 0 {
		if err := f.Truncate(hlHeader); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("host log %s: %w", hl.path, err)
		}
	} else {
		rep.HostLog = "replayed"
		rep.Notes = append(rep.Notes, fmt.Sprintf("host log %s: replaying %d bytes of WAL committed before the last process ended", hl.path, walBytes))
	}
	hl.f = f
	hl.created = time.Now()
	hl.base = id
	hl.adoptSeq()
	if err := hl.writeHead(); err != nil {
		f.Close()
		return nil, 0, err
	}

	// 4. The shim maps the file as the WAL; it owns a duplicate of the fd.
	fd, err := dupFd(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("host log %s: %w", hl.path, err)
	}
	cs, cl := C.CString(s.path), C.CString(hl.path)
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cl))
	if rc := C.es_wal_attach(cs, C.int(fd), cl, C.int(boolInt(hl.level == HostSync)), C.longlong(walBytes)); rc != sqliteOK {
		closeFd(fd)
		f.Close()
		if rc == sqliteFull {
			return nil, 0, fmt.Errorf("host log %s: %w: the host disk is full", hl.path, ErrHostDir)
		}
		return nil, 0, fmt.Errorf("host log %s: map: SQLite code %d", hl.path, int(rc))
	}
	hl.attached = true
	return hl, walBytes, nil
}

// proveHostLog decides whether the log in f may be replayed over the
// database now on the drive (id); it returns the WAL bytes to replay
// (0: an empty log, reused) or why not.
func (s *Store) proveHostLog(f *os.File, hl *hostLog, id checkpoint.Identity) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() == 0 {
		return 0, nil // created, never written: reuse
	}
	h, err := readHead(f)
	if err != nil {
		return 0, err
	}
	walBytes := fi.Size() - hlHeader
	if walBytes < 32 {
		return 0, nil
	}
	wh := make([]byte, 4)
	if _, err := f.ReadAt(wh, hlHeader); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrHostLogTorn, err)
	}
	if magic := binary.BigEndian.Uint32(wh); magic != 0x377f0682 && magic != 0x377f0683 {
		return 0, nil // no WAL header: nothing committed since the last checkpoint
	}
	// A log written at HostLog is only as good as the page cache it was
	// written to: after a reboot its pages may have reached the disk in
	// any order.
	if h.level == HostLog && h.boot != hl.boot {
		return 0, fmt.Errorf("%w: written at level hostlog before the host restarted (boot %s, now %s)", ErrHostLogOtherBoot, h.boot, hl.boot)
	}
	// Stock SQLite wrote the database after this log's process ended.
	// (A retired redo log of our own in-place checkpoints is not that.)
	if live, err := walLive(s.opts.FS, s.path); err != nil {
		return 0, fmt.Errorf("host log: %w", err)
	} else if live {
		return 0, fmt.Errorf("%w: stock SQLite left %s after this log was written", ErrHostLogGeneration, s.path+walSuffix)
	}
	// The log's base, or a generation a commit begun since made: that
	// commit may have replaced the journal (a new id) and then been
	// rolled back by Recover, leaving the base's generation and content
	// under a new journal id.
	// A base without a journal (stock SQLite made the database): its
	// checksum, taken by the log's Open, against the database's now.
	if !id.SumKnown && h.id.SumKnown && id.Size == h.id.Size && id.Size > 0 {
		sum, err := s.sumDB(id.Size)
		if err != nil {
			return 0, fmt.Errorf("%w: checksum of %s: %w", ErrHostLogGeneration, s.path, err)
		}
		id.Sum, id.SumKnown = sum, true
	}
	sameState := h.id.Gen == id.Gen && h.id.Size == id.Size &&
		h.id.SumKnown == id.SumKnown && (!id.SumKnown || h.id.Sum == id.Sum)
	same := sameState && h.id.JournalID == id.JournalID
	// A commit in flight: the drive's journal must still hold the log's
	// base as a durable checkpoint (a rebuilt journal carries it), so a
	// database that merely has a higher generation is not taken for it.
	// Past the base, only the generation this log's process recorded as
	// in flight before its Ready record (pending: generation, size and
	// checksum of the bytes it was writing) is accepted: any other higher
	// generation may be another host's commit made after this log's
	// process died, and a replay over it would lose that host's work.
	// Such a log is kept aside.
	// An earlier commit that failed (an undecided rename, say) may have
	// reached the drive too: its Ready is kept as earlier until a commit
	// succeeds.
	ours := func(r journal.Record) bool {
		return r.Gen != 0 && id.SumKnown && id.Gen == r.Gen && id.Size == r.Size && id.Sum == r.Sum
	}
	pending := h.inflight > 0 && (ours(h.pending) || ours(h.earlier))
	inflight := h.inflight > 0 && (sameState && id.SumKnown || pending) && s.journalVouches(h.id)
	// A base never checkpointed nor read whole (a database stock SQLite
	// created) has no checksum: its size alone cannot tell stock SQLite's
	// later changes from it. Only an empty base (the database did not
	// exist yet) is proven by its size.
	if !h.id.SumKnown && h.id.Size != 0 {
		return 0, fmt.Errorf("%w: the log's base (%d bytes) has no checksum: a change by stock SQLite could not be told from it", ErrHostLogGeneration, h.id.Size)
	}
	switch {
	case same || inflight:
	case h.id.JournalID != id.JournalID && !inflight:
		return 0, fmt.Errorf("%w: log for %s, drive has %s", ErrHostLogForeign, h.id, id)
	default:
		return 0, fmt.Errorf("%w: log for %s, drive has %s", ErrHostLogGeneration, h.id, id)
	}
	// The database itself is the one its journal vouches for (stock
	// SQLite, or anyone, did not change it meanwhile): read it whole.
	if m, ok := s.state.main.(checkpointer); ok {
		if err := m.Prove(true); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrHostLogGeneration, err)
		}
	}
	return walBytes, nil
}

// journalVouches reports whether the checkpoint journal on the drive
// records base as a durable checkpoint of this database.
func (s *Store) journalVouches(base checkpoint.Identity) bool {
	f, err := s.opts.FS.Open(journal.Name(s.path), device.ReadOnly)
	if err != nil {
		return false
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil || n > 64<<20 {
		return false
	}
	data := make([]byte, n)
	if got, _ := f.ReadAt(data, 0); int64(got) != n {
		return false
	}
	j, err := journal.Decode(data)
	if err != nil {
		return false
	}
	if base.Gen == 0 {
		return base.JournalID == 0 && j.Header.BaseGen == 0 // the first checkpoint of a new database
	}
	for _, r := range j.Records {
		if r.Kind == journal.Done && r.Gen == base.Gen && r.Size == base.Size && (!base.SumKnown || r.Sum == base.Sum) {
			return true
		}
	}
	return false
}

// setAside renames a log that will not be applied, and makes the rename
// durable; it returns the new name.
func setAside(path string) (string, error) { return setAsideAs(path, path) }

// setAsideAs renames path to the kept name of the log named as.
func setAsideAs(path, as string) (string, error) {
	kept := as + hlKeptInfix + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, kept); err != nil {
		return "", err
	}
	return kept, device.OS.SyncDir(filepath.Dir(path))
}

// adoptSeq continues the seq of a file reused (replayed, emptied, or kept
// from a retained WAL): a header written with a lower seq than a slot
// left by the earlier writer would lose to that stale slot on disk.
func (hl *hostLog) adoptSeq() {
	if h, err := readHead(hl.f); err == nil && h.seq > hl.seq {
		hl.seq = h.seq
	}
}

// writeHead writes the header to the slot not holding the current one;
// at HostSync it is flushed before writeHead returns.
func (hl *hostLog) writeHead() error {
	hl.seq++
	h := hlHead{seq: hl.seq, id: hl.base, level: hl.level, inflight: hl.inflight, pending: hl.pending, earlier: hl.earlier, created: hl.created, updated: time.Now(), boot: hl.boot, db: hl.db}
	b, off := h.encode(), int64(hl.seq%2)*hlSlot
	if hl.attached {
		cs := C.CString(hl.db)
		defer C.free(unsafe.Pointer(cs))
		cb := C.CBytes(b)
		defer C.free(cb)
		var moves C.longlong
		if e := C.es_wal_head(cs, cb, C.longlong(len(b)), C.longlong(off), &moves); e != 0 {
			return fmt.Errorf("host log %s: header: %w", hl.path, errnoErr(int(e)))
		}
		hl.moves = int64(moves)
	} else if _, err := hl.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("host log %s: header: %w", hl.path, err)
	}
	if hl.level == HostSync {
		if err := hl.sync(); err != nil {
			return err
		}
	}
	return nil
}

// sync flushes the log (WAL and header) through the shim's fd. A failed
// flush is never retried on that file: the shim moves the log to a new
// one, which the next flush flushes.
func (hl *hostLog) sync() error {
	cs := C.CString(hl.db)
	defer C.free(unsafe.Pointer(cs))
	if e := C.es_wal_sync(cs); e != 0 {
		return fmt.Errorf("%w: host log %s: %w", ErrHostLogFlush, hl.path, errnoErr(int(e)))
	}
	return nil
}

// hostLogFlushFails counts the failed flushes of the host log of the
// database at path: a checkpoint that saw it grow failed on the host
// log's flush (SQLite's xSync of the WAL), not on the drive.
func hostLogFlushFails(path string) int64 {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	return int64(C.es_wal_flush_fails(cs))
}

// testFailHostLogSync makes the next n flushes of any host log fail with
// errno e, as a failing disk would: for tests (cgo is not available in
// _test.go files).
func testFailHostLogSync(e syscall.Errno, n int) { C.es_hl_test_fail_sync(C.int(e), C.int(n)) }

// commit runs a commit of the main file to the drive (f) between two
// header writes: before it, the generations it may write are marked as
// this log's (a crash in between leaves a log still provably this
// database's); after it, the new generation is the log's base.
func (hl *hostLog) commit(main mainFile, f func() error) error {
	if hl == nil {
		return f()
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	hl.inflight++
	if hl.pending.Gen != 0 {
		// The last attempt failed after its Ready: that generation may be
		// on the drive until this commit settles it.
		hl.earlier = hl.pending
	}
	hl.pending = journal.Record{}
	if err := hl.writeHead(); err != nil {
		hl.inflight--
		return err
	}
	if m, ok := main.(checkpointer); ok {
		// Called inside f, with hl.mu held by this goroutine; cleared
		// after it, so no commit outside hl.commit touches the header.
		m.SetBeforeReady(func(r journal.Record) error {
			hl.pending = r
			return hl.writeHead()
		})
		defer m.SetBeforeReady(nil)
	}
	err := f()
	m, ok := main.(checkpointer)
	if err != nil {
		// inflight and the Ready stay: that attempt may have reached the
		// drive. A generation the main file now knows durable (a rename
		// settled since, or a commit durable before its reopen failed)
		// becomes the base; a journal replaced by the failed attempt
		// alone does not (the base's id stays the one its Done is in).
		// The header write is best effort: the next attempt writes it
		// again before touching the drive.
		if ok {
			if id := m.Identity(); id.Gen != hl.base.Gen {
				hl.rebase(id)
				hl.writeHead()
			}
		}
		return err
	}
	if ok {
		// A new generation becomes the base; none (nothing was pending)
		// clears the count all the same: the drive is at the base.
		// A failure here leaves the previous slot, which names this
		// generation as in flight: still provable.
		hl.rebase(m.Identity())
		hl.inflight, hl.pending, hl.earlier = 0, journal.Record{}, journal.Record{}
		hl.writeHead()
	}
	return nil
}

// rebase makes id the log's base, keeping the checksum Open took of a
// base without a journal while id is still that base.
func (hl *hostLog) rebase(id checkpoint.Identity) {
	if !id.SumKnown && hl.base.SumKnown && id.Gen == hl.base.Gen && id.Size == hl.base.Size {
		id.Sum, id.SumKnown = hl.base.Sum, true
	}
	hl.base = id
}

// sumDB is the database checksum (journal.Sum) of the database file's
// first size bytes, read through the Store's filesystem.
func (s *Store) sumDB(size int64) (uint64, error) {
	f, err := s.opts.FS.Open(s.path, device.ReadOnly)
	if err != nil {
		return 0, err
	}
	defer f.Close() // read-only
	if n, err := f.Size(); err != nil || n != size {
		return 0, fmt.Errorf("%d bytes, want %d (%v)", n, size, err)
	}
	h := journal.NewSum()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		k := min(int64(len(buf)), size-off)
		n, err := f.ReadAt(buf[:k], off)
		if int64(n) != k {
			return 0, fmt.Errorf("read at %d: %d of %d bytes (%v)", off, n, k, err)
		}
		h.Write(buf[:k])
		off += k
	}
	return h.Sum64(), nil
}

// close closes the Go side's handle; the shim owns the mapping.
func (hl *hostLog) close() {
	if hl != nil && hl.f != nil {
		hl.f.Close()
	}
}

// walBudget is the WAL size the checkpoint policy works with (gate
// high-water mark, rewind and pressure thresholds): MaxWALBytes, or
// DefaultMaxWALBytes when the cap came from the host disk.
func (s *Store) walBudget() int64 {
	if s.opts.budget > 0 {
		return s.opts.budget
	}
	return s.opts.MaxWALBytes
}

// hostWALCap sets the WAL cap of a Store with a host log and no
// MaxWALBytes: a third of the free space of the log's filesystem, at least
// DefaultMaxWALBytes. RetainWALBytes, when defaulted, stays at
// DefaultMaxWALBytes (it is what stays mapped, and on disk, between
// transactions).
func (s *Store) hostWALCap() {
	hl := s.state.hl
	if hl == nil || !s.opts.maxDefaulted {
		return
	}
	free, err := freeBytes(filepath.Dir(hl.path))
	if err != nil {
		s.opts.Logger.Warn("ejectsafe: free space of the host log's disk unknown; WAL cap stays at the default", "dir", filepath.Dir(hl.path), "err", err)
		return
	}
	s.opts.budget = DefaultMaxWALBytes
	// A third: the checkpoint of a transaction that large spills about as
	// much again beside the log (checkpoint/spill.go), with room to spare.
	s.opts.MaxWALBytes = max(free/3, DefaultMaxWALBytes)
	cs := C.CString(s.path)
	defer C.free(unsafe.Pointer(cs))
	C.es_wal_limits(cs, C.longlong(s.opts.MaxWALBytes), C.longlong(s.opts.RetainWALBytes))
}
