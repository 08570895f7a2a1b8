package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// A write-protected card: an exFAT image on a read-only loop device,
// mounted read-only. A writable Open is refused; a ReadOnly one reads,
// and the image is bit-for-bit what it was.
func TestReadOnly_LoopMount(t *testing.T) {
	realfs.Skip(t, realfs.ExFAT)
	v, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(v.Mount, "card.db")
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	for i := range 200 {
		mustExec(t, s.DB(), "INSERT INTO t VALUES(?)", i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.RemountReadOnly(); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, v.Image)
	if s, err := Open(path, nil); !errors.Is(err, ErrReadOnly) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("writable Open on the write-protected card: %v, want ErrReadOnly", err)
	}
	r, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("ReadOnly Open: %v", err)
	}
	var n, sum int
	if err := r.DB().QueryRow("SELECT count(*), sum(x) FROM t").Scan(&n, &sum); err != nil || n != 200 || sum != 19900 {
		t.Errorf("read: %d rows, sum %d, %v", n, sum, err)
	}
	var check string
	if err := r.DB().QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := v.Unmount(); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, v.Image) != before {
		t.Error("the image changed under a read-only Store")
	}
}
