package bench

/*
#include <stdlib.h>
#include "limitvfs.h"
*/
import "C"

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"unsafe"
)

// registerLimit registers the "eslimit" VFS (limitvfs.c) once.
var registerLimit = sync.OnceValue(func() error {
	if rc := C.es_limit_register(); rc != 0 {
		return fmt.Errorf("bench: register the eslimit VFS: SQLite code %d", int(rc))
	}
	return nil
})

// openLimit opens the limit arm at path (a name only: nothing touches the
// filesystem): SQLite's WAL code over malloc'd buffers, exclusive locking
// mode, synchronous=NORMAL, no automatic checkpoint (the benchmarks
// checkpoint between rounds, as for the store). One connection.
func openLimit(path string) (db *sql.DB, closeAll func() error, err error) {
	if err := registerLimit(); err != nil {
		return nil, nil, err
	}
	dsn := fmt.Sprintf("%s?vfs=eslimit&_sync=NORMAL", fileURI(path))
	if db, err = sql.Open("sqlite3", dsn); err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	// Exclusive locking mode first: without xShm methods, SQLite enters
	// WAL only then, and keeps the wal-index in its own heap.
	var mode string
	if _, err := db.Exec("PRAGMA locking_mode=EXCLUSIVE"); err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := db.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		db.Close()
		return nil, nil, fmt.Errorf("bench: limit arm: journal_mode %q, %v; want wal", mode, err)
	}
	if _, err := db.Exec("PRAGMA wal_autocheckpoint=0"); err != nil {
		db.Close()
		return nil, nil, err
	}
	closeAll = func() error {
		err := db.Close()
		if abs, aerr := filepath.Abs(path); aerr == nil {
			dropLimit(abs)
		}
		return err
	}
	return db, closeAll, nil
}

// dropLimit frees the limit arm's buffers under prefix.
func dropLimit(prefix string) {
	cs := C.CString(prefix)
	defer C.free(unsafe.Pointer(cs))
	C.es_limit_drop(cs)
}
