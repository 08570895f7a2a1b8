package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// BenchmarkStore_identity measures the proof made before every checkpoint
// (ensureAttached on the same mount: a statx of the directory, a stat of
// the database, an open and a 4 KiB read of the journal's header) against
// a bare stat of the database, the floor, and a checkpoint of one small
// transaction, what it is added to. On the temporary directory, and on an
// exFAT loop mount where one is available.
//
//	go test -run '^$' -bench 'Store_identity' -count 3 ./store
func BenchmarkStore_identity(b *testing.B) {
	dirs := map[string]string{"tmp": b.TempDir()}
	if realfs.Available(realfs.ExFAT) == nil {
		v, err := realfs.New(b, realfs.Options{Kind: realfs.ExFAT})
		if err != nil {
			b.Fatal(err)
		}
		dirs["exfat"] = v.Mount
	}
	for _, name := range []string{"tmp", "exfat"} {
		dir, ok := dirs[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(dir, "bench.db")
			s, err := Open(path, &Options{ManualCheckpoint: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			db := s.DB()
			if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
				b.Fatal(err)
			}
			if err := s.Checkpoint(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.Run("stat", func(b *testing.B) {
				for range b.N {
					if _, err := os.Stat(path); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("proof", func(b *testing.B) {
				for range b.N {
					s.mu.Lock()
					err := s.ensureAttached()
					s.mu.Unlock()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("checkpoint", func(b *testing.B) {
				for range b.N {
					if _, err := db.Exec("INSERT INTO t VALUES (1)"); err != nil {
						b.Fatal(err)
					}
					if err := s.Checkpoint(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
