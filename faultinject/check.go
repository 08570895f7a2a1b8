package faultinject

import (
	"fmt"
	"path"

	"github.com/ejectsafe/ejectsafe/device"
)

// CheckConfig says what Check knows about the workload's files.
type CheckConfig struct {
	// DBPath is the main database file. Required for the in-place and
	// rename rules.
	DBPath string
	// JournalPath is the checkpoint journal. The claim rules apply to
	// writes landing on the file linked there.
	JournalPath string
	// AllowInPlace turns off the in-place rules (InPlaceOpen,
	// InPlaceWrite), for the store's interim mode that writes the
	// database directly. THAT MODE IS NOT CRASH-SAFE: a torn checkpoint
	// corrupts the database.
	AllowInPlace bool
	// LogPath is the database's redo log (an in-place writer's <db>-wal,
	// invariant log-ahead). With it, the database may be opened for
	// writing and written in place, but only while the file linked at
	// LogPath is durable: its data synced after its last write and its
	// creation followed by a SyncDir (LogNotDurable). Once a Done claim
	// is made while a log created in the trace is linked, or while its
	// removal is not yet durable, that log describes the state of that
	// checkpoint: writing or replacing the database while it is still
	// linked leaves a log older than the database (StaleLog), as does
	// the Done claim itself when the log's removal is not durable. The
	// database replaced (a rename over it) while a log created in the
	// trace is linked, Done or not, or while its removal is not durable,
	// is StaleLog too. A log linked before the trace is taken as durable
	// and as no checkpoint's. A log may also be retired in place: its
	// first 32 bytes overwritten with zeros (SQLite reads it as an empty
	// WAL) and then synced; from that Sync it describes no checkpoint
	// (no StaleLog), and a header written into it again makes it a log
	// of the checkpoint in flight, as a created one (reused).
	LogPath string
	// DecodeClaim turns the bytes of one WriteAt on the journal into the
	// claims they make. Nil turns the claim rules off. It must not
	// retain data. Return no claim for records that assert nothing
	// checkable (a "began" or "aborted" record).
	DecodeClaim func(data []byte) []Claim
}

// The claim vocabulary. A claim is checked at the moment the journal write
// that makes it is issued: what it claims must already be durable.
const (
	// ClaimReady says Path (the temporary copy) holds its final data,
	// durably: Path's file had a successful Sync after its last write or
	// truncate (and after its creation, if created in the trace), and no
	// Sync of it ever failed. Also,
	// Check requires this claim, written and then synced in the journal,
	// before a rename of Path over DBPath (RenameBeforeReady).
	ClaimReady = "ready"
	// ClaimDone says Path's directory entry is durable: every creation,
	// rename or removal of Path (for a rename, of both its names) was
	// followed by a successful SyncDir of the directory involved.
	ClaimDone = "done"
)

// Claim is one assertion a journal record makes.
type Claim struct {
	Kind string // ClaimReady or ClaimDone
	Gen  uint64 // checkpoint generation, for messages only
	Path string // the file or entry the claim is about
}

// ViolationKind names a broken durability rule.
type ViolationKind int

const (
	// InPlaceOpen: DBPath opened ReadWrite, or created.
	InPlaceOpen ViolationKind = iota + 1
	// InPlaceWrite: WriteAt or Truncate on the file linked at DBPath.
	InPlaceWrite
	// RenameUnsynced: a file renamed over DBPath while it had writes (or
	// its creation) not followed by a successful Sync, or after a Sync of
	// it failed.
	RenameUnsynced
	// RenameBeforeReady: a file renamed over DBPath before a journal
	// record claiming it ready was written and the journal synced.
	RenameBeforeReady
	// ClaimNotDurable: a journal write claims a state that is not durable
	// when it is issued.
	ClaimNotDurable
	// UnknownClaim: DecodeClaim returned a kind outside the vocabulary.
	UnknownClaim
	// SyncRetry: Sync on a file after a Sync on it failed.
	SyncRetry
	// LogNotDurable: the database written in place while the log at
	// LogPath is missing or not durable.
	LogNotDurable
	// StaleLog: a log at LogPath outlives the checkpoint it describes:
	// the database written or replaced after that checkpoint's Done with
	// the log still linked, or Done claimed before the log's removal was
	// durable.
	StaleLog
	// LogRetiredEarly: the log at LogPath retired (zeros over its header,
	// synced) or removed, or Done claimed while a log is linked or was
	// removed in the trace, while the database has writes not yet
	// synced: a pull then leaves neither a log nor the pages.
	LogRetiredEarly
)

var violationNames = [...]string{"", "InPlaceOpen", "InPlaceWrite", "RenameUnsynced",
	"RenameBeforeReady", "ClaimNotDurable", "UnknownClaim", "SyncRetry", "LogNotDurable", "StaleLog", "LogRetiredEarly"}

func (k ViolationKind) String() string {
	if k > 0 && int(k) < len(violationNames) {
		return violationNames[k]
	}
	return fmt.Sprintf("ViolationKind(%d)", int(k))
}

// Violation is one broken rule, at one operation of the trace.
type Violation struct {
	Kind   ViolationKind
	Event  Event  // the offending operation
	Detail string // what was wrong, with the operations that make it so
}

func (v Violation) String() string {
	return fmt.Sprintf("%s at op %s: %s", v.Kind, v.Event, v.Detail)
}

// Check replays a trace and reports every operation that breaks the
// ordering rules of the invariants replace-by-rename, journal-ahead and
// fsync-fails-the-checkpoint (docs/ARCHITECTURE.md). It judges
// intentions: an operation that breaks a rule is reported even if it
// failed. State from before the trace is taken as durable. Writes count
// as dirtying even when they failed (a failed write may have landed in
// part).
func Check(trace []Event, cfg CheckConfig) []Violation {
	c := &checker{
		cfg:         cfg,
		linked:      map[string]uint64{},
		lastWrite:   map[uint64]int{},
		lastSync:    map[uint64]int{},
		created:     map[uint64]int{},
		syncFailed:  map[uint64]int{},
		entryChange: map[string]entryChange{},
		dirSync:     map[string]int{},
		ready:       map[string]int{},
		logDone:     map[uint64]int{},
		logHeader:   map[uint64]logHeader{},
		logState:    map[uint64]logState{},
	}
	if cfg.DBPath != "" {
		c.db = clean(cfg.DBPath)
	}
	if cfg.JournalPath != "" {
		c.journal = clean(cfg.JournalPath)
	}
	if cfg.LogPath != "" {
		c.log = clean(cfg.LogPath)
	}
	for _, ev := range trace {
		c.step(ev)
	}
	return c.out
}

// logHeader is a write over a log's header: zeros (a retirement) or not
// (a log written into the file).
type logHeader struct {
	index int
	zero  bool
}

// logState is what the trace did to a log file's header.
type logState int

const (
	logWritten logState = iota + 1 // a header was written into it (maybe not durable yet)
	logRetired                     // zeros over its header, synced
	logUnknown                     // a write over its header failed: it may hold anything
)

type entryChange struct {
	index int
	other string // the rename's other name, or ""
}

type checker struct {
	cfg              CheckConfig
	db, journal, log string
	logDone          map[uint64]int         // log inode -> the Done claim made while it was linked
	logHeader        map[uint64]logHeader   // log inode -> its last write at offset 0, not yet synced
	logState         map[uint64]logState    // log inode -> written or retired in the trace
	linked           map[string]uint64      // path -> inode, as far as the trace shows
	lastWrite        map[uint64]int         // inode -> last WriteAt/Truncate
	lastSync         map[uint64]int         // inode -> last successful Sync
	created          map[uint64]int         // inode -> its Create
	syncFailed       map[uint64]int         // inode -> first failed Sync
	entryChange      map[string]entryChange // path -> last create/rename/remove
	dirSync          map[string]int         // dir -> last successful SyncDir
	ready            map[string]int         // path -> last journal write claiming it ready
	out              []Violation
}

func (c *checker) report(k ViolationKind, ev Event, format string, args ...any) {
	c.out = append(c.out, Violation{Kind: k, Event: ev, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) inPlace() bool { return c.db != "" && !c.cfg.AllowInPlace && c.log == "" }

func (c *checker) step(ev Event) {
	ok := ev.Err == 0
	switch ev.Kind {
	case OpOpen:
		if c.inPlace() && ev.Path == c.db && ev.Mode == device.ReadWrite {
			c.report(InPlaceOpen, ev, "the database is opened for writing")
		}
		if ok && ev.Inode != 0 {
			c.linked[ev.Path] = ev.Inode
		}
	case OpCreate:
		if c.inPlace() && ev.Path == c.db {
			c.report(InPlaceOpen, ev, "the database is created in place, not renamed from a synced copy")
		}
		if ok && ev.Inode != 0 {
			c.linked[ev.Path] = ev.Inode
			c.created[ev.Inode] = ev.Index
			c.entryChange[ev.Path] = entryChange{index: ev.Index}
		}
	case OpLock:
		if ok && ev.Inode != 0 {
			c.linked[ev.Path] = ev.Inode
		}
	case OpWriteAt, OpTruncate:
		c.write(ev)
	case OpSync:
		if first, failed := c.syncFailed[ev.Inode]; failed {
			c.report(SyncRetry, ev, "fsync retried after it failed at op %d: the durable state is unknown, abandon the file", first)
		}
		if ok {
			c.lastSync[ev.Inode] = ev.Index
			if h, pending := c.logHeader[ev.Inode]; pending {
				delete(c.logHeader, ev.Inode)
				if h.zero {
					c.dbNotSynced(ev, "the log is retired")
					c.logState[ev.Inode] = logRetired
					delete(c.logDone, ev.Inode)
				}
			}
		} else if _, failed := c.syncFailed[ev.Inode]; !failed {
			c.syncFailed[ev.Inode] = ev.Index
		}
	case OpRename:
		c.rename(ev)
	case OpRemove:
		if ok && c.log != "" && ev.Path == c.log {
			c.dbNotSynced(ev, "the log is removed")
		}
		if ok {
			delete(c.linked, ev.Path)
			c.entryChange[ev.Path] = entryChange{index: ev.Index}
		}
	case OpSyncDir:
		if ok {
			c.dirSync[ev.Path] = ev.Index
		}
	}
}

func (c *checker) write(ev Event) {
	if db, ok := c.linked[c.db]; ok && c.inPlace() && ev.Inode == db {
		c.report(InPlaceWrite, ev, "the database file is written in place")
	}
	if db, ok := c.linked[c.db]; ok && c.db != "" && c.log != "" && ev.Inode == db {
		if why := c.logNotDurable(); why != "" {
			c.report(LogNotDurable, ev, "the database is written in place but %s", why)
		}
		c.staleLog(ev, "the database is written in place")
	}
	if l, ok := c.linked[c.log]; ok && c.log != "" && ev.Inode == l && ev.Kind == OpWriteAt && ev.Off == 0 && ev.Err != 0 {
		// A failed write may have landed in part: the header is anything.
		delete(c.logHeader, ev.Inode)
		c.logState[ev.Inode] = logUnknown
	} else if ok && c.log != "" && ev.Inode == l && ev.Kind == OpWriteAt && ev.Off == 0 {
		zero := len(ev.Data) >= 32
		for _, b := range ev.Data[:min(len(ev.Data), 32)] {
			zero = zero && b == 0
		}
		c.logHeader[ev.Inode] = logHeader{index: ev.Index, zero: zero}
		if !zero {
			// A new log in the file: what it describes is the
			// checkpoint in flight, not one done before.
			c.logState[ev.Inode] = logWritten
			delete(c.logDone, ev.Inode)
		}
	}
	c.lastWrite[ev.Inode] = ev.Index
	j, ok := c.linked[c.journal]
	if !ok || c.journal == "" || ev.Inode != j || ev.Kind != OpWriteAt || c.cfg.DecodeClaim == nil {
		return
	}
	for _, cl := range c.cfg.DecodeClaim(ev.Data) {
		p := clean(cl.Path)
		switch cl.Kind {
		case ClaimReady:
			if why := c.dataNotDurable(p); why != "" {
				c.report(ClaimNotDurable, ev, "journal claims gen %d ready but %s", cl.Gen, why)
			}
			if ev.Err == 0 {
				c.ready[p] = ev.Index
			}
		case ClaimDone:
			if why := c.entryNotDurable(p); why != "" {
				c.report(ClaimNotDurable, ev, "journal claims gen %d done but %s", cl.Gen, why)
			}
			c.logAtDone(ev, cl.Gen)
		default:
			c.report(UnknownClaim, ev, "claim kind %q for %s is not %q or %q", cl.Kind, p, ClaimReady, ClaimDone)
		}
	}
}

func (c *checker) rename(ev Event) {
	if ev.NewPath == c.db && c.db != "" && c.log != "" {
		c.replacedBesideLog(ev)
	}
	if ev.NewPath == c.db && c.db != "" && ev.Inode != 0 {
		if why := c.inodeNotDurable(ev.Path, ev.Inode); why != "" {
			c.report(RenameUnsynced, ev, "renamed over the database but %s", why)
		}
		if c.journal != "" && c.cfg.DecodeClaim != nil {
			j := c.linked[c.journal]
			w, claimed := c.ready[ev.Path]
			switch s, synced := c.lastSync[j]; {
			case !claimed:
				c.report(RenameBeforeReady, ev, "no journal record claims %s ready", ev.Path)
			case !synced || s < w:
				c.report(RenameBeforeReady, ev, "the journal record claiming %s ready (op %d) was not synced", ev.Path, w)
			}
		}
	}
	if ev.Err == 0 {
		delete(c.linked, ev.Path)
		if ev.Inode != 0 {
			c.linked[ev.NewPath] = ev.Inode
		}
		c.entryChange[ev.NewPath] = entryChange{index: ev.Index, other: ev.Path}
		c.entryChange[ev.Path] = entryChange{index: ev.Index, other: ev.NewPath}
	}
}

// dataNotDurable says why the data of the file at p is not durable, or "".
func (c *checker) dataNotDurable(p string) string {
	ino, ok := c.linked[p]
	if !ok {
		if ch, changed := c.entryChange[p]; changed {
			return fmt.Sprintf("%s was unlinked at op %d", p, ch.index)
		}
		return "" // untouched since before the trace: durable
	}
	return c.inodeNotDurable(p, ino)
}

func (c *checker) inodeNotDurable(p string, ino uint64) string {
	if failed, ok := c.syncFailed[ino]; ok {
		return fmt.Sprintf("a Sync of %s failed at op %d: its data may be lost whatever later Syncs say", p, failed)
	}
	s, synced := c.lastSync[ino]
	if w, wrote := c.lastWrite[ino]; wrote && (!synced || s < w) {
		return fmt.Sprintf("%s was written at op %d with no successful Sync since", p, w)
	}
	if cr, created := c.created[ino]; created && !synced {
		return fmt.Sprintf("%s was created at op %d and never synced", p, cr)
	}
	return ""
}

// entryNotDurable says why p's directory entry is not durable, or "".
func (c *checker) entryNotDurable(p string) string {
	ch, ok := c.entryChange[p]
	if !ok {
		return ""
	}
	for _, name := range []string{p, ch.other} {
		if name == "" {
			continue
		}
		d := path.Dir(name)
		if s, synced := c.dirSync[d]; !synced || s < ch.index {
			return fmt.Sprintf("the entry change of %s at op %d was not followed by SyncDir(%s)", p, ch.index, d)
		}
	}
	return ""
}

// logNotDurable says why the log at LogPath is not durable, or "".
func (c *checker) logNotDurable() string {
	ino, ok := c.linked[c.log]
	if !ok {
		if ch, changed := c.entryChange[c.log]; changed {
			return fmt.Sprintf("the log %s was unlinked at op %d", c.log, ch.index)
		}
		return fmt.Sprintf("no log at %s", c.log)
	}
	if why := c.inodeNotDurable(c.log, ino); why != "" {
		return why
	}
	switch c.logState[ino] {
	case logRetired:
		return fmt.Sprintf("the log %s is retired (its header zeros)", c.log)
	case logUnknown:
		return fmt.Sprintf("a write over the log %s's header failed", c.log)
	}
	return c.entryNotDurable(c.log)
}

// logAtDone notes a Done claim: a log created in the trace and still
// linked now describes that checkpoint; a log removed without a SyncDir
// since may come back beside it (StaleLog).
func (c *checker) logAtDone(ev Event, gen uint64) {
	if c.log == "" {
		return
	}
	if _, linked := c.linked[c.log]; linked {
		c.dbNotSynced(ev, fmt.Sprintf("journal claims gen %d done", gen))
	} else if _, changed := c.entryChange[c.log]; changed {
		c.dbNotSynced(ev, fmt.Sprintf("journal claims gen %d done", gen))
	}
	if ino, ok := c.linked[c.log]; ok {
		if h, pending := c.logHeader[ino]; pending && h.zero {
			c.report(StaleLog, ev, "journal claims gen %d done but the log's retirement at op %d is not synced", gen, h.index)
		}
		_, created := c.created[ino]
		switch c.logState[ino] {
		case logRetired:
		case logWritten, logUnknown:
			c.logDone[ino] = ev.Index
		default:
			if created {
				c.logDone[ino] = ev.Index
			}
		}
		return
	}
	if ch, changed := c.entryChange[c.log]; changed {
		if why := c.entryNotDurable(c.log); why != "" {
			c.report(StaleLog, ev, "journal claims gen %d done but the log's removal at op %d is not durable: %s", gen, ch.index, why)
		}
	}
}

// dbNotSynced reports LogRetiredEarly when the database has writes not
// followed by a successful Sync as what happens. (A Sync that failed is
// SyncRetry's business: the settle after one writes every page again
// through a new handle and syncs that.)
func (c *checker) dbNotSynced(ev Event, what string) {
	db, ok := c.linked[c.db]
	if !ok || c.db == "" {
		return
	}
	if w, wrote := c.lastWrite[db]; wrote {
		if s, synced := c.lastSync[db]; !synced || s < w {
			c.report(LogRetiredEarly, ev, "%s but the database's write at op %d is not synced", what, w)
		}
	}
}

// replacedBesideLog reports the database replaced (a copy renamed over
// it) while a log made in the trace is still linked, done or not, or while
// its removal is not durable: a pull then leaves beside the copy a log of
// another state, which SQLite would apply over it (log-ahead: a copy
// starts only once the log is gone).
func (c *checker) replacedBesideLog(ev Event) {
	if ino, ok := c.linked[c.log]; ok {
		op, created := c.created[ino]
		switch _, described := c.logDone[ino]; {
		case described:
			c.staleLog(ev, "the database is replaced")
		case c.logState[ino] == logRetired:
		case c.logState[ino] == logWritten || c.logState[ino] == logUnknown:
			c.report(StaleLog, ev, "the database is replaced while the log %s written in the trace is not retired", c.log)
		case created:
			c.report(StaleLog, ev, "the database is replaced while the log %s created at op %d is still there", c.log, op)
		}
		return
	}
	if ch, changed := c.entryChange[c.log]; changed {
		if why := c.entryNotDurable(c.log); why != "" {
			c.report(StaleLog, ev, "the database is replaced but the log's removal at op %d is not durable: %s", ch.index, why)
		}
	}
}

// staleLog reports a write or replacement of the database while a log
// that describes an earlier Done checkpoint is still linked.
func (c *checker) staleLog(ev Event, what string) {
	if ino, ok := c.linked[c.log]; ok {
		if done, described := c.logDone[ino]; described {
			c.report(StaleLog, ev, "%s while the log %s of the checkpoint done at op %d is still there", what, c.log, done)
		}
	}
}
