package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// Rescue (issue 13, build 5): what to do with the commits in a host log
// when the database's drive is gone, or with a log kept aside.

// HostLogInfo describes one host log in words a person can act on.
type HostLogInfo struct {
	Path     string     // the log file
	Kept     bool       // a log kept aside (not applied) by an Open
	DB       string     // the database it was written for (its path then)
	Database DatabaseID // the drive's state the WAL applies to
	InFlight uint32     // drive commits begun after Database (each may have reached it)
	Level    Durability // HostLog or HostSync
	Created  time.Time  // when the Store that wrote it opened it
	Updated  time.Time  // the header's last write (the last checkpoint)
	WALBytes int64      // bytes after the header
	Commits  int        // committed transactions in the WAL (valid frames)
	Frames   int        // valid frames, committed or not
	Err      error      // the header is unreadable (ErrHostLogTorn); other fields are zero
}

// ListHostLogs lists the host logs in dir (Options.HostDir; "" for the
// default), live and kept aside, oldest first.
func ListHostLogs(dir string) ([]HostLogInfo, error) {
	if dir == "" {
		dir = os.Getenv(HostDirEnv)
	}
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(cache, "ejectsafe")
	}
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []HostLogInfo
	for _, n := range names {
		if !strings.HasSuffix(n.Name(), hlSuffix) && !strings.Contains(n.Name(), hlSuffix+hlKeptInfix) && !strings.HasSuffix(n.Name(), hlSuffix+hlAbandoning) {
			continue
		}
		out = append(out, ReadHostLog(filepath.Join(dir, n.Name())))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// ReadHostLog describes the log at path; it only reads.
func ReadHostLog(path string) HostLogInfo {
	info := HostLogInfo{Path: path, Kept: strings.Contains(filepath.Base(path), hlSuffix+hlKeptInfix)}
	f, err := os.Open(path)
	if err != nil {
		info.Err = err
		return info
	}
	defer f.Close()
	h, err := readHead(f)
	if err != nil {
		info.Err = err
		return info
	}
	info.DB, info.Database, info.InFlight, info.Level = h.db, DatabaseID(h.id), h.inflight, h.level
	info.Created, info.Updated = h.created, h.updated
	if fi, err := f.Stat(); err == nil && fi.Size() > hlHeader {
		info.WALBytes = fi.Size() - hlHeader
		info.Frames, info.Commits = countFrames(io.NewSectionReader(f, hlHeader, info.WALBytes))
	}
	return info
}

func (i HostLogInfo) String() string {
	if i.Err != nil {
		return fmt.Sprintf("%s: unreadable: %v", i.Path, i.Err)
	}
	kept := ""
	if i.Kept {
		kept = " (kept aside)"
	}
	return fmt.Sprintf("%s%s: database %s, %s, level %s, %d committed transactions (%d frames, %d bytes), last checkpoint record %s",
		i.Path, kept, i.DB, i.Database, i.Level, i.Commits, i.Frames, i.WALBytes, i.Updated.Format(time.RFC3339))
}

// countFrames counts a WAL's valid frames and its commits, as SQLite's
// recovery would find them (walkWAL).
func countFrames(r io.ReaderAt) (frames, commits int) {
	walkWAL(r, func(f sqlitewal.Frame, _ []byte) bool {
		frames++
		if f.Commit != 0 {
			commits++
		}
		return true
	})
	return frames, commits
}

// ExportHostLog writes to dst a complete SQLite database: the database
// at base (its pages, from the drive when readable) with the log's
// committed transactions on top. It proves, as Open's replay does, that
// the log continues that very database (its checkpoint journal, its
// generation and checksum), working on copies: base and the log are
// only read. dst must not exist; on error nothing is left there.
func ExportHostLog(log, base, dst string) (err error) {
	info := ReadHostLog(log)
	if info.Err != nil {
		return fmt.Errorf("store: export %s: %w", log, info.Err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("store: export to %s: %w", dst, fs.ErrExist)
	}
	dst, err = filepath.Abs(dst)
	if err != nil {
		return err
	}
	if dst, err = resolvePath(device.OS, dst); err != nil { // Open's name for it
		return err
	}
	work, err := os.MkdirTemp("", "ejectsafe-rescue-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o700); err != nil {
		return err
	}
	// The database and its journal (which proves its identity), copied
	// next to dst; the log, copied where Open looks for dst's.
	defer func() {
		if err != nil {
			for _, p := range []string{dst, journal.Name(dst), dst + lockSuffix, dst + walSuffix} {
				os.Remove(p)
			}
		}
	}()
	if err := copyFile(base, dst, 0o600); err != nil {
		return fmt.Errorf("store: export: base %w", err)
	}
	if err := copyFile(journal.Name(base), journal.Name(dst), 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: export: journal %w", err)
	}
	if err := copyFile(log, filepath.Join(work, hostLogName(dst)), 0o600); err != nil {
		return fmt.Errorf("store: export: log %w", err)
	}
	s, err := Open(dst, &Options{HostDir: work, Durability: max(info.Level, HostLog), ManualCheckpoint: true})
	if err != nil {
		return fmt.Errorf("store: export: %w", err)
	}
	rep := s.Recovery()
	if cerr := s.Close(); cerr != nil {
		return fmt.Errorf("store: export: %w", cerr)
	}
	if rep.HostLog != "replayed" {
		if rep.HostLogErr != nil {
			return fmt.Errorf("store: export: %s does not continue %s: %w", log, base, rep.HostLogErr)
		}
		return fmt.Errorf("store: export: %s holds no committed transaction", log)
	}
	// dst is a plain SQLite database now: the store's files go.
	os.Remove(journal.Name(dst))
	os.Remove(dst + lockSuffix)
	return nil
}

// ApplyHostLog replays the log at path onto the database at db, through
// Open with opts (HostDir, FS...), and closes it: only when the log is
// proven to continue that database and the generation now on its drive.
// Anything else is refused with an error wrapping the reason
// (ErrHostLogForeign, ErrHostLogGeneration, ErrHostLogTorn,
// ErrHostLogOtherBoot) and the database's content is not changed. The
// log at path is only read: remove it once applied.
func ApplyHostLog(log, db string, opts *Options) error {
	var o Options
	if opts != nil {
		o = *opts
	}
	info := ReadHostLog(log)
	if info.Err != nil {
		return fmt.Errorf("store: apply %s: %w", log, info.Err)
	}
	if o.Durability == DurabilityDefault || o.Durability == Checkpoint {
		o.Durability = max(info.Level, HostLog)
	}
	dir, err := hostDir(o.HostDir)
	if err != nil {
		return err
	}
	o.HostDir = dir
	abs, err := filepath.Abs(db)
	if err != nil {
		return err
	}
	fsys := o.FS
	if fsys == nil {
		fsys = device.OS
	}
	if abs, err = resolvePath(fsys, abs); err != nil {
		return fmt.Errorf("store: apply to %s: %w", db, err)
	}
	target := filepath.Join(dir, hostLogName(abs))
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("store: apply to %s: a host log of that database is already in %s: open the database once (it replays it) and try again", db, dir)
	}
	if err := copyFile(log, target, 0o600); err != nil {
		return fmt.Errorf("store: apply %s: %w", log, err)
	}
	s, err := Open(abs, &o)
	if err != nil {
		os.Remove(target)
		return fmt.Errorf("store: apply %s: %w", log, err)
	}
	rep := s.Recovery()
	for _, k := range rep.KeptAside {
		if strings.HasPrefix(k, target+hlKeptInfix) {
			os.Remove(k) // our copy, refused; the original stays
		}
	}
	if rep.HostLog != "replayed" {
		s.Close()
		if rep.HostLogErr != nil {
			return fmt.Errorf("store: apply %s to %s: refused: %w", log, db, rep.HostLogErr)
		}
		return fmt.Errorf("store: apply %s to %s: it holds no committed transaction", log, db)
	}
	return s.Close()
}

// Rescue writes to dst a complete copy of the database as this Store
// sees it (every committed transaction, checkpointed or not), with
// SQLite's VACUUM INTO. The base pages are read from the drive (or this
// Store's memory); when the drive is gone and they cannot be read it
// fails, and the host log keeps the commits for ApplyHostLog or
// ExportHostLog later. dst must not exist.
func (s *Store) Rescue(ctx context.Context, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("store: rescue to %s: %w", dst, fs.ErrExist)
	}
	if _, err := s.pin.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("store: rescue %s to %s: %w", s.path, dst, s.cause(err))
	}
	return nil
}

// copyFile copies src to a new file dst (never over one) and syncs it.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
