package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/store"
)

// quiet drops the filesystem notes Open logs (FUSE, container, VM), which
// depend on the machine.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// exampleDir stands for the removable drive's mount point.
func exampleDir() string {
	dir, err := os.MkdirTemp("", "ejectsafe-example-")
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

func ExampleOpen() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := store.Open(filepath.Join(dir, "app.db"), &store.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	db := s.DB() // a *sql.DB: use it from any number of goroutines
	if _, err := db.Exec("CREATE TABLE notes(body TEXT)"); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO notes(body) VALUES(?)", "hello"); err != nil {
		log.Fatal(err)
	}
	var body string
	if err := db.QueryRow("SELECT body FROM notes").Scan(&body); err != nil {
		log.Fatal(err)
	}
	fmt.Println(body)

	// Close checkpoints first. Its error is the one that says committed
	// data is not on the drive yet: never drop it.
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: hello
}

// Close fails when its checkpoint fails (the drive is full, read-only or
// gone); the Store then stays open with every commit in memory. Retry once
// the cause is fixed, or let go with Abandon if the drive is gone for good.
func ExampleStore_Close() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "app.db"), &store.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}

	if err := s.Close(); errors.Is(err, store.ErrCheckpoint) {
		// Nothing is lost yet: the data is in this process's memory.
		log.Printf("the drive did not take the last checkpoint: %v", err)
		if err := s.Close(); err != nil { // or wait for the drive, then retry
			log.Printf("still failing; giving up on the drive: %v", s.Abandon())
		}
	} else if err != nil {
		// Everything was durable; releasing a file failed.
		log.Print(err)
	}
	fmt.Println("closed")
	// Output: closed
}

// CloseContext bounds the wait for a slow or hung drive; Abandon lets the
// database go, dropping what the last checkpoint did not cover.
func ExampleStore_CloseContext() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "app.db"), &store.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.CloseContext(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// The drive has not answered: its close goes on in the
		// background. To let go now (losing what is not checkpointed):
		s.Abandon()
	case err != nil:
		log.Print(err)
	}
	fmt.Println(err)
	// Output: <nil>
}

// Params reach every pooled connection, where a PRAGMA through DB() would
// reach only one: here foreign keys and immediate write transactions.
func ExampleOptions_params() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "app.db"), &store.Options{
		Logger: quiet,
		Params: url.Values{
			"_foreign_keys": {"on"},
			// BEGIN IMMEDIATE: a transaction that reads, then writes,
			// waits for the writer before it instead of failing with
			// "database is locked".
			"_txlock": {"immediate"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Print(err)
		}
	}()
	db := s.DB()
	for _, q := range []string{
		"CREATE TABLE author(id INTEGER PRIMARY KEY)",
		"CREATE TABLE book(author INTEGER NOT NULL REFERENCES author(id))",
	} {
		if _, err := db.Exec(q); err != nil {
			log.Fatal(err)
		}
	}
	_, err = db.Exec("INSERT INTO book(author) VALUES(42)")
	fmt.Println(err)
	// Output: FOREIGN KEY constraint failed
}

// ConnectHook registers functions and collations on every connection.
func ExampleOptions_connectHook() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "app.db"), &store.Options{
		Logger: quiet,
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			return c.RegisterFunc("shout", strings.ToUpper, true)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	var got string
	if err := s.DB().QueryRow("SELECT shout('hello')").Scan(&got); err != nil {
		log.Fatal(err)
	}
	fmt.Println(got)
	// Output: HELLO
}

// ReadOnly opens a database on a write-protected card: nothing at all is
// written to the drive.
func ExampleOptions_readOnly() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	s, err := store.Open(path, &store.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.DB().Exec("CREATE TABLE t(x); INSERT INTO t VALUES('on the card')"); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := store.Open(path, &store.Options{ReadOnly: true, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	var x string
	if err := r.DB().QueryRow("SELECT x FROM t").Scan(&x); err != nil {
		log.Fatal(err)
	}
	fmt.Println(x)
	_, err = r.DB().Exec("INSERT INTO t VALUES('more')")
	fmt.Println(err)
	// Output:
	// on the card
	// attempt to write a readonly database
}
