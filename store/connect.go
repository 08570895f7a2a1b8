package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// Per-connection configuration: Options.Params and Options.ConnectHook
// reach every connection of the pool, after the Store's own setup, and
// cannot undo it.

// connParams are the DSN parameters of github.com/mattn/go-sqlite3 that
// Options.Params may set: each is applied to every connection of the pool.
var connParams = map[string]bool{
	"_auto_vacuum": true, "_vacuum": true,
	"_busy_timeout": true, "_timeout": true,
	"_cache_size":          true,
	"_case_sensitive_like": true, "_cslike": true,
	"_defer_foreign_keys": true, "_defer_fk": true,
	"_foreign_keys": true, "_fk": true,
	"_ignore_check_constraints": true,
	"_loc":                      true,
	"_mutex":                    true,
	"_query_only":               true,
	"_recursive_triggers":       true, "_rt": true,
	"_secure_delete":   true,
	"_stmt_cache_size": true,
	"_txlock":          true,
	"_writable_schema": true,
}

// refusedParams are DSN parameters the Store sets itself or that would
// take the database away from it, with the reason given to the caller.
var refusedParams = map[string]string{
	"_journal_mode": "the Store keeps the database in WAL mode, with the WAL in memory",
	"_journal":      "the Store keeps the database in WAL mode, with the WAL in memory",
	"_locking_mode": "the Store needs locking_mode NORMAL: every pooled connection shares the database",
	"_locking":      "the Store needs locking_mode NORMAL: every pooled connection shares the database",
	"_synchronous":  "the Store sets synchronous=NORMAL, which makes its checkpoints durable",
	"_sync":         "the Store sets synchronous=NORMAL, which makes its checkpoints durable",
	"vfs":           "the Store's VFS keeps the WAL in memory; another VFS would bypass it",
	"mode":          "use Options.ReadOnly for a read-only Store",
	"cache":         "a shared cache is not supported",
	"immutable":     "use Options.ReadOnly for a write-protected drive",
	"nolock":        "the Store's connections must lock the database against each other",
	"modeof":        "the Store creates the database itself",
	"_auth":         "SQLite's user authentication extension is not supported",
	"_auth_user":    "SQLite's user authentication extension is not supported",
	"_auth_pass":    "SQLite's user authentication extension is not supported",
	"_auth_crypt":   "SQLite's user authentication extension is not supported",
	"_auth_salt":    "SQLite's user authentication extension is not supported",
}

// checkConnect validates Params and PageSize, and takes a busy timeout
// from Params when BusyTimeout is zero. It runs before defaults apply.
func (o *Options) checkConnect() error {
	names := make([]string, 0, len(o.Params))
	for k := range o.Params {
		names = append(names, k)
	}
	sort.Strings(names) // the same error for the same Options
	for _, k := range names {
		if why, ok := refusedParams[k]; ok {
			return fmt.Errorf("%w: Params: %s: %s", ErrBadOptions, k, why)
		}
		if !connParams[k] {
			return fmt.Errorf("%w: Params: unknown parameter %q (see github.com/mattn/go-sqlite3's DSN parameters)", ErrBadOptions, k)
		}
		if len(o.Params[k]) != 1 {
			return fmt.Errorf("%w: Params: %s given %d values, want 1", ErrBadOptions, k, len(o.Params[k]))
		}
	}
	if v, ok := busyParam(o.Params); ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return fmt.Errorf("%w: Params: busy timeout %q is not a number of milliseconds", ErrBadOptions, v)
		}
		d := time.Duration(ms) * time.Millisecond
		switch {
		case o.BusyTimeout == 0:
			o.BusyTimeout = d
		case o.BusyTimeout != d:
			return fmt.Errorf("%w: Params set a busy timeout of %v and BusyTimeout %v", ErrBadOptions, d, o.BusyTimeout)
		}
		if d == 0 {
			// mattn's 0 means no waiting; BusyTimeout's zero means the
			// default. The smallest wait is the nearest honest reading.
			o.BusyTimeout = time.Millisecond
		}
	}
	if p := o.PageSize; p != 0 && !sqlitewal.ValidPageSize(p) {
		return fmt.Errorf("%w: PageSize %d: SQLite takes a power of two from 512 to 65536", ErrBadOptions, p)
	}
	return nil
}

func busyParam(p url.Values) (string, bool) {
	for _, k := range []string{"_busy_timeout", "_timeout"} {
		if v, ok := p[k]; ok && len(v) == 1 {
			return v[0], true
		}
	}
	return "", false
}

// dsn is what every connection of the pool is opened with.
func (s *Store) dsn() string {
	q := url.Values{}
	for k, v := range s.opts.Params {
		if k != "_busy_timeout" && k != "_timeout" {
			q[k] = v
		}
	}
	q.Set("vfs", vfsName)
	q.Set("_busy_timeout", strconv.FormatInt(s.opts.BusyTimeout.Milliseconds(), 10))
	if s.opts.ReadOnly {
		q.Set("mode", "ro")
	}
	return FileURI(s.path, q.Encode())
}

// connect sets up every new connection: the Store's own setup, then the
// application's ConnectHook, then a check that the hook left the setup
// alone.
func (s *Store) connect(c *sqlite3.SQLiteConn) error {
	if s.opts.ReadOnly {
		if _, err := c.Exec("PRAGMA query_only=1", nil); err != nil {
			return err
		}
	} else if err := setupConn(c, s.opts.RetainWALBytes, s.opts.PageSize, s.syncLevel()); err != nil {
		return err
	}
	// At Checkpoint nothing of the database is to reach the host's disk:
	// SQLite's temporary files (large sorts, temporary tables and
	// indexes) stay in memory too. A ConnectHook may choose otherwise.
	if s.opts.Durability == Checkpoint {
		if _, err := c.Exec("PRAGMA temp_store=MEMORY", nil); err != nil {
			return err
		}
	}
	if s.opts.ConnectHook == nil {
		return nil
	}
	if err := s.opts.ConnectHook(c); err != nil {
		return fmt.Errorf("store: Options.ConnectHook: %w", err)
	}
	return checkSetup(c, s.opts.ReadOnly, s.syncLevel())
}

// syncLevel is the synchronous setting of the Store's connections: FULL
// (2) at HostSync, where SQLite's xSync of the WAL flushes the host log
// at each commit; NORMAL (1) otherwise.
func (s *Store) syncLevel() int {
	if s.opts.Durability == HostSync {
		return 2
	}
	return 1
}

// checkSetup refuses a connection whose ConnectHook changed what the Store
// depends on.
func checkSetup(c *sqlite3.SQLiteConn, readOnly bool, syncLevel int) error {
	want := []struct{ pragma, value, why string }{
		{"journal_mode", "wal", "the WAL must stay in the Store's memory"},
		{"locking_mode", "normal", "every pooled connection shares the database"},
		{"wal_autocheckpoint", "0", "the Store alone decides when to checkpoint"},
		{"synchronous", fmt.Sprint(syncLevel), "checkpoints are durable only at synchronous=NORMAL, and HostSync commits only at FULL"},
	}
	if readOnly {
		want = []struct{ pragma, value, why string }{
			{"locking_mode", "normal", "every pooled connection shares the database"},
			{"query_only", "1", "the Store was opened read-only"},
		}
	}
	for _, w := range want {
		got, err := pragma(c, "PRAGMA "+w.pragma)
		if err != nil {
			return err
		}
		if !strings.EqualFold(got, w.value) {
			return fmt.Errorf("%w: Options.ConnectHook changed %s from %s to %s: %s", ErrBadOptions, w.pragma, w.value, got, w.why)
		}
	}
	return nil
}

// notePageSize logs when Options.PageSize cannot apply: an existing
// database keeps its page size.
func (s *Store) notePageSize(ctx context.Context) {
	if s.opts.PageSize == 0 {
		return
	}
	var ps int
	if err := s.pin.QueryRowContext(ctx, "PRAGMA page_size").Scan(&ps); err != nil || ps == s.opts.PageSize {
		return
	}
	s.opts.Logger.Warn("ejectsafe: Options.PageSize applies to new databases only; this one keeps its page size",
		"path", s.path, "page_size", ps, "requested", s.opts.PageSize)
}

// connector opens connections with this Store's DSN and setup. After an
// eject it opens none: the *sql.DB stays open so that its calls fail
// with ErrEjected, as the README promises, rather than with database/sql's
// "database is closed".
type connector struct {
	dsn     string
	drv     *sqlite3.SQLiteDriver
	ejected atomic.Bool
	closing atomic.Bool // Close began: no new connection
	path    string
	answer  *answerGate
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	if c.ejected.Load() {
		c.answer.wait()
		return nil, fmt.Errorf("store: %s: %w", c.path, ErrEjected)
	}
	if c.closing.Load() {
		return nil, fmt.Errorf("store: %s: %w", c.path, ErrClosed)
	}
	return c.drv.Open(c.dsn)
}
func (c *connector) Driver() driver.Driver { return c.drv }

// setupConn runs on every new connection of a writable Store. mattn applies its own pragmas
// first (locking_mode NORMAL, synchronous NORMAL); with the shim's xShm
// methods in heap memory, NORMAL locking mode can enter WAL.
func setupConn(c *sqlite3.SQLiteConn, retainWAL int64, pageSize, syncLevel int) error {
	if pageSize != 0 {
		// Before the database enters WAL mode, which writes its first
		// page; a no-op on a database that has one.
		if _, err := c.Exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize), nil); err != nil {
			return err
		}
	}
	mode, err := pragma(c, "PRAGMA journal_mode=WAL")
	if err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("store: journal_mode=WAL answered %q", mode)
	}
	// synchronous=NORMAL: the WAL is memory, so the only syncs are the
	// checkpoint's, which SQLite issues at NORMAL and above. Never OFF:
	// then no xSync ends a checkpoint.
	// At HostSync, FULL: SQLite then syncs the WAL (the host log) at
	// every commit.
	if _, err := c.Exec(fmt.Sprintf("PRAGMA synchronous=%d; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=%d", syncLevel, retainWAL), nil); err != nil {
		return err
	}
	if sync, err := pragma(c, "PRAGMA synchronous"); err != nil || sync != fmt.Sprint(syncLevel) {
		return fmt.Errorf("store: synchronous is %q, want %d: %v", sync, syncLevel, err)
	}
	return nil
}

func pragma(c *sqlite3.SQLiteConn, q string) (string, error) {
	rows, err := c.Query(q, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	v := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(v); err != nil {
		return "", fmt.Errorf("store: %s: %w", q, err)
	}
	return fmt.Sprint(v[0]), nil
}
