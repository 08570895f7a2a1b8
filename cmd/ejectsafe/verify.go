package main

import (
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/store"
)

// runVerify reports, read-only: the journal's state, what recover would
// do, whether the database is what the journal's last checkpoint wrote
// (size and checksum), SQLite's integrity check of the database file as
// it is on the drive, and whether a -wal or -journal stock SQLite left
// beside it belongs to it. Anything not clean (a corrupt database, a
// foreign -wal or -journal, a checkpoint recover would have to settle or
// refuses) is its finding, with the report; it errs only on usage or
// operational errors (no report possible).
func runVerify(in *invocation) error {
	path, err := verifyPath(in)
	if err != nil {
		return err
	}
	stdout, stderr := in.stdout, in.stderr
	rep, err := checkpoint.Verify(device.OS, path)
	if err != nil && deadMount("verify", path, err, false, stdout, stderr) {
		return said(err)
	}
	if err != nil {
		return report(in, rep, err)
	}
	integrity, err := integrityCheck(path)
	if err != nil && deadMount("verify", path, err, false, stdout, stderr) {
		return said(err)
	}
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	stock, err := store.InspectStock(path)
	if err != nil {
		return fmt.Errorf("inspect -wal and -journal: %w", err)
	}
	ok := integrity == "ok" && rep.Action == checkpoint.ActionNone && !rep.Mismatch
	var stockJSON []stockOut
	for _, f := range stock {
		ok = ok && !f.Foreign && !f.Unchecked
		stockJSON = append(stockJSON, stockOut{Path: f.Path, Note: f.Note, Foreign: f.Foreign, Unchecked: f.Unchecked})
	}
	var found error
	if !ok {
		found = said(problem(errFound))
	}
	if in.json {
		writeJSON(stdout, verifyOut{reportJSON("verify", codeOf(found), rep), integrity, nonNil(stockJSON), ok})
	} else {
		fmt.Fprintln(stdout, rep)
		fmt.Fprintf(stdout, "integrity_check: %s\n", integrity)
		for _, f := range stock {
			fmt.Fprintf(stdout, "stock SQLite file %s: %s\n", f.Path, f.Note)
		}
	}
	return found
}

// verifyPath is dbPath for verify: a file whose header is not SQLite's
// but that has a checkpoint journal beside it is this project's database,
// damaged: it gets a report (a finding), not a refusal (an error).
func verifyPath(in *invocation) (string, error) {
	abs, err := realPath(in.pos[0])
	if err == nil {
		err = checkDatabase(abs)
	}
	if errors.Is(err, errNotDatabase) {
		if fi, jerr := os.Stat(journal.Name(abs)); jerr == nil && fi.Mode().IsRegular() {
			return abs, nil
		}
	}
	if err != nil {
		return "", err
	}
	return abs, nil
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
	if isCorrupt(err) {
		// Too damaged for SQLite to check: that is the finding.
		return err.Error(), nil
	}
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
	if err := rows.Err(); isCorrupt(err) {
		return err.Error(), nil
	} else if err != nil {
		return "", err
	}
	return out, nil
}

// isCorrupt reports whether err is SQLite finding the database malformed
// or not a database.
func isCorrupt(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB)
}
