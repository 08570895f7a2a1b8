package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
)

// MaxJournalSize bounds the journal: Options.JournalLimit (256 KiB by
// default) is capped at it, and a journal file larger than it was not
// written by this package. Open, Recover and Verify refuse such a file
// with ErrJournal after one stat, without reading it: junk of any size
// costs nothing to refuse, and a slow drive is never read for seconds.
const MaxJournalSize = 4 << 20

// checkpointSlots is the number of records one checkpoint appends:
// Began, Ready, then Done or Aborted. A commit starts only with this many
// free slots, so that every record of it is written in place.
const checkpointSlots = 3

// readJournal returns the journal's bytes, or exists=false if there is no
// journal.
func readJournal(fsys device.FS, name string) (data []byte, exists bool, err error) {
	f, err := fsys.Open(name, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close() // read-only: a close error changes nothing on the drive
	data, err = readAll(f)
	return data, true, err
}

func readAll(f device.File) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > MaxJournalSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than any journal ejectsafe writes (at most %d); ejectsafe recover --reset-journal moves it aside",
			ErrJournal, f.Name(), size, MaxJournalSize)
	}
	data := make([]byte, size)
	if err := readFull(f, data, 0); err != nil {
		return nil, err
	}
	return data, nil
}

// cleanJournal reports why j cannot be appended to as is, or "".
func cleanJournal(j journal.Journal, n int) string {
	cp, ok := j.Latest()
	switch {
	case j.Torn || j.Damaged:
		return "its tail is torn"
	case ok && cp.InFlight():
		return fmt.Sprintf("checkpoint %d is in flight", cp.Gen)
	case j.Len+j.Free*journal.RecordSize != n:
		return "it has bytes past its records" // unreachable: Decode says Torn
	}
	return ""
}

// jfile is the checkpoint journal as a Main writes it. Records are
// appended with one WriteAt and one fsync, into the free slots after the
// last good record: each fills a slot of its own (journal.SlotSize), so a
// torn append destroys no sector holding the header or a synced record.
// An append never writes past the end of the file: the journal is
// created, compacted and replaced only whole, with its free slots,
// through a temporary file, an fsync, a rename and a directory fsync, so
// that its header is never torn and the file is never extended (fusefat
// corrupts a file extended after it was reopened).
type jfile struct {
	fsys device.FS
	p    paths
	perm os.FileMode

	f      device.File     // read-write handle; nil until first needed
	j      journal.Journal // what the file holds: every record appended and synced
	exists bool            // a journal is at p.journal, decoded clean at Open

	// poisoned means a write or fsync of f failed: what the file holds on
	// the drive is unknown, and since an fsync is never retried on a file
	// after it failed (invariant fsync-fails-the-checkpoint), f is closed and never written
	// again. The next commit replaces the journal whole.
	poisoned bool

	// tried holds the last records this jfile tried to append, synced or
	// not, and tryID the file id of the last journal it tried to create:
	// after a pull, the drive may hold them (Prove).
	tried []journal.Record
	tryID uint64
}

// maxTried bounds jfile.tried: a few checkpoints' records.
const maxTried = 4 * checkpointSlots

func (jf *jfile) noteTried(recs ...journal.Record) {
	jf.tried = append(jf.tried, recs...)
	if n := len(jf.tried); n > maxTried {
		jf.tried = append(jf.tried[:0:0], jf.tried[n-maxTried:]...)
	}
}

// usable reports whether records can be appended.
func (jf *jfile) usable() bool { return jf.f != nil && !jf.poisoned }

// open opens the existing journal read-write and decodes it again through
// the handle that appends will use.
func (jf *jfile) open() error {
	f, err := jf.fsys.Open(jf.p.journal, device.ReadWrite)
	if err != nil {
		return err
	}
	data, err := readAll(f)
	var j journal.Journal
	if err == nil {
		j, err = journal.Decode(data)
	}
	if err == nil {
		if why := cleanJournal(j, len(data)); why != "" {
			err = fmt.Errorf("%w: journal %s: %s", ErrRecoveryNeeded, jf.p.journal, why)
		}
	}
	if err != nil {
		f.Close() // nothing was written through it
		return err
	}
	jf.f, jf.j = f, j
	return nil
}

// append writes recs into the free slots after the last record with one
// WriteAt, and fsyncs. The write starts at jf.j.Len, a slot boundary
// (journal.Decode and rebuild only ever give whole slots), and covers
// whole free slots, so it touches no sector of synced data and never
// extends the file. On failure the journal is poisoned.
func (jf *jfile) append(recs ...journal.Record) error {
	if !jf.usable() {
		return fmt.Errorf("journal %s: not open", jf.p.journal)
	}
	if len(recs) > jf.j.Free {
		// Our own bug (a commit starts with checkpointSlots free slots):
		// nothing written, and the next commit replaces the journal.
		jf.poison(nil)
		return fmt.Errorf("journal %s: %d free slots for %d records", jf.p.journal, jf.j.Free, len(recs))
	}
	j := jf.j
	j.Records = slices.Clip(j.Records) // appends below never touch jf.j's array
	var b []byte
	for _, r := range recs {
		if err := j.Check(r); err != nil {
			return err // our own bug: nothing written, the journal stays good
		}
		b, _ = journal.AppendRecord(b, j.Header.FileID, r) // Check validated r
		j.Records = append(j.Records, r)
		j.Len += journal.RecordSize
		j.Free--
	}
	jf.noteTried(recs...)
	if _, err := jf.f.WriteAt(b, int64(jf.j.Len)); err != nil {
		return jf.poison(err)
	}
	if err := jf.f.Sync(); err != nil {
		return jf.poison(err)
	}
	jf.j = j
	return nil
}

// poison abandons the handle after a failed write or fsync.
func (jf *jfile) poison(err error) error {
	jf.poisoned = true
	if jf.f != nil {
		jf.f.Close() // the write error is the one to report
		jf.f = nil
	}
	return err
}

// rebuild replaces the journal with a new one holding h and recs, then
// free slots up to limit bytes (and at least checkpointSlots of them): a
// new file id, so no frame of the old file ever counts. The new file
// replaces the old through device's durable-write module (temp, fsync,
// rename, directory fsync): no crash leaves a journal with a torn or
// zero-length header. The records carried over describe checkpoints that are
// already resolved, so a crash at any step leaves a journal recovery can
// use: the old one, or the new one.
func (jf *jfile) rebuild(h journal.Header, recs []journal.Record, limit int64) error {
	j := journal.Journal{Header: h, Len: journal.HeaderSize}
	b := journal.AppendHeader(nil, h)
	for _, r := range recs {
		if err := j.Check(r); err != nil {
			return err
		}
		b, _ = journal.AppendRecord(b, h.FileID, r)
		j.Records = append(j.Records, r)
		j.Len += journal.RecordSize
	}
	j.Free = max(int(limit/journal.SlotSize)-1-len(recs), checkpointSlots)
	jf.tryID = h.FileID
	jf.noteTried(recs...)
	b = append(b, make([]byte, j.Free*journal.RecordSize)...)
	// Steps 1-3 of device's durable-write module; a leftover temp of an
	// earlier attempt never holds anything the journal does not.
	pf, err := device.CreatePending(jf.fsys, jf.p.journal, jf.p.jtemp, jf.perm, true)
	if err != nil {
		return errors.Unwrap(err)
	}
	if _, err := pf.File().WriteAt(b, 0); err != nil {
		pf.Abort() // best effort: Recover removes it too
		return err
	}
	if err := pf.Sync(); err != nil {
		pf.Abort()
		return errors.Unwrap(err)
	}
	err = pf.Commit(func() error {
		// The old journal is closed before the rename: Windows refuses
		// to rename over a file that is still open ("Access denied"),
		// and nothing more is written to it either way. Until the new
		// journal is opened below, no record is appended (jf.f is nil).
		if jf.f != nil {
			jf.f.Close()
			jf.f = nil
		}
		return nil
	})
	var re *device.ReplaceError
	switch {
	case errors.As(err, &re) && re.Op == device.OpRename:
		// The rename may or may not have happened: which journal is at
		// the name is unknown, so neither is appended to. Both describe
		// the same resolved state.
		jf.poison(nil)
		pf.Abort()
		return re.Err
	case errors.As(err, &re):
		jf.poison(nil)
		return re.Err
	case err != nil:
		return err
	}
	// Appends go through a handle opened by the journal's own name, so
	// that errors and fault rules name the journal, not its temp file.
	jf.f, jf.j, jf.exists, jf.poisoned = nil, j, true, false
	g, err := jf.fsys.Open(jf.p.journal, device.ReadWrite)
	if err != nil {
		return jf.poison(err)
	}
	jf.f = g
	return nil
}

// close closes the handle.
func (jf *jfile) close() error {
	if jf.f == nil {
		return nil
	}
	err := jf.f.Close()
	jf.f = nil
	return err
}
