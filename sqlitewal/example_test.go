package sqlitewal_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// A redo log for two pages of a 4 KiB-page database that grows to three
// pages, written to a file and checked as a caller that wrote it would.
func Example() {
	dir, _ := os.MkdirTemp("", "sqlitewal-example-")
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "db-wal"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	pages := []sqlitewal.Page{
		{No: 3, Data: bytes.Repeat([]byte{3}, 4096)},
		{No: 1, Data: bytes.Repeat([]byte{1}, 4096)},
	}
	h, err := sqlitewal.Write(io.NewOffsetWriter(f, 0), pages, sqlitewal.WriteOptions{PageSize: 4096, DBPages: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Here the caller fsyncs the log (and its directory) before it writes
	// a single page in place.
	s, err := sqlitewal.Validate(f, sqlitewal.Expect{PageSize: 4096, Salts: &[2]uint32{h.Salt1, h.Salt2}, Frames: 2, DBPages: 3})
	fmt.Println(s.Frames, s.Committed, s.DBPages, err)
	// Output: 2 2 3 <nil>
}
