package store

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/lease"
)

// TestOpen_caseInsensitive (issue 17, finding 7), on real exFAT and FAT:
// a database made as Case.db and opened as case.db is one database with
// one set of names. The second Open names everything after "Case.db", so
// a checkpoint copy a crashed holder of Case.db left (Case.db.ejectsafe-
// tmp-N) is found and removed by recovery, and the lease is the one
// Case.db's holder had, naming Case.db. Before, the copy stayed for ever
// (recovery looked for case.db.ejectsafe-tmp-*) and the lease differed
// by case.
func TestOpen_caseInsensitive(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			upper := filepath.Join(vol.Mount, "Case.db")
			s, err := Open(upper, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, s.DB(), "CREATE TABLE t(v)")
			mustExec(t, s.DB(), "INSERT INTO t VALUES('first')")
			mustCheckpoint(t, s)
			firstLease := s.lease
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// What a holder of Case.db killed inside a checkpoint leaves:
			// a copy the journal never marked ready.
			stray := journal.TempName(upper, 99)
			if err := os.WriteFile(stray, make([]byte, 8192), 0o644); err != nil {
				t.Fatal(err)
			}

			s, err = Open(filepath.Join(vol.Mount, "case.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.path != upper {
				t.Errorf("opened as %s; want the name the directory holds, %s", s.path, upper)
			}
			if s.lease.Path != firstLease.Path || s.lease.DB != "Case.db" {
				t.Errorf("lease %+v; want %+v (one lease per database, naming Case.db)", s.lease, firstLease)
			}
			mustExec(t, s.DB(), "INSERT INTO t VALUES('second')")
			mustCheckpoint(t, s)
			var n int
			if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
				t.Errorf("rows %d, %v; want 2", n, err)
			}
			if _, found, err := lease.Find(vol.Mount); err != nil || len(found) != 1 || found[0].Lease.DB != "Case.db" {
				t.Errorf("leases on the volume: %+v, %v; want one, naming Case.db", found, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var names []string
			entries, err := os.ReadDir(vol.Mount)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				names = append(names, e.Name())
				if strings.Contains(e.Name(), ".ejectsafe-tmp-") {
					t.Errorf("checkpoint copy left behind: %s", e.Name())
				}
				if strings.HasPrefix(e.Name(), "case.db") {
					t.Errorf("a name spelled after case.db: %s", e.Name())
				}
			}
			sort.Strings(names)
			t.Logf("volume: %v", names)
		})
	}
}
