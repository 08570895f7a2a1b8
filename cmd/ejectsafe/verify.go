package main

import (
	"database/sql"
	"fmt"
	"io"

	_ "github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/store"
)

// runVerify: ejectsafe verify [--json] PATH. Read-only: the journal's
// state, what recover would do, whether the database is what the journal's
// last checkpoint wrote (size and checksum), and SQLite's integrity check
// of the database file as it is on the drive. Exit 0 when all are clean;
// 1 otherwise; 2 on usage or operational errors.
func runVerify(args []string, stdout, stderr io.Writer) int {
	in, path, code := dbArg("verify", args, stdout, stderr)
	if in == nil {
		return code
	}
	rep, err := checkpoint.Verify(device.OS, path)
	if err != nil && deadMount("verify", path, err, false, stdout, stderr) {
		return 2
	}
	if err != nil {
		return report(in, rep, err)
	}
	integrity, err := integrityCheck(path)
	if err != nil && deadMount("verify", path, err, false, stdout, stderr) {
		return 2
	}
	if err != nil {
		return in.fail(2, fmt.Errorf("integrity check: %w", err))
	}
	ok := integrity == "ok" && rep.Action == checkpoint.ActionNone && !rep.Mismatch
	code = 0
	if !ok {
		code = 1
	}
	if in.json {
		writeJSON(stdout, verifyOut{reportJSON("verify", code, rep), integrity, ok})
	} else {
		fmt.Fprintln(stdout, rep)
		fmt.Fprintf(stdout, "integrity_check: %s\n", integrity)
	}
	if !ok {
		return 1
	}
	return 0
}

// integrityCheck runs PRAGMA integrity_check on the database file alone,
// read-only, with no locks, -wal or -shm (immutable=1), through SQLite's
// default VFS: the file exactly as it is on the drive.
func integrityCheck(path string) (string, error) {
	db, err := sql.Open("sqlite3", store.FileURI(path, "immutable=1&mode=ro"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		if out != "" {
			out += "; "
		}
		out += line
	}
	return out, rows.Err()
}
