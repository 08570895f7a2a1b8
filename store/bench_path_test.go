package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// BenchmarkOpenAdditions measures what issue 10's paths and sweep add to
// every Open, against a whole Open+Abandon of the same database in the
// same run: resolving the path (a symlinked one: the links followed) and
// checking its hard links, and sweeping dead leases and sockets when
// there are none to remove; and issue 17's case-insensitive spelling
// (canonical-name, included in resolve+links). Compare the ns/op of the
// sub-benchmarks.
func BenchmarkOpenAdditions(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "real", "bench.db")
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		b.Fatal(err)
	}
	s, err := Open(link, &Options{ManualCheckpoint: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.DB().Exec("CREATE TABLE t(x); INSERT INTO t VALUES(1)"); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("open+abandon", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			s, err := Open(link, &Options{ManualCheckpoint: true})
			if err != nil {
				b.Fatal(err)
			}
			s.Abandon()
		}
	})
	b.Run("resolve+links", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := resolvePath(device.OS, link)
			if err != nil || p != path {
				b.Fatal(p, err)
			}
			if err := checkLinks(device.OS, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Issue 17: the case-insensitive spelling (part of resolve+links),
	// alone, on this case-sensitive directory: one failed lstat per
	// component with letters.
	b.Run("canonical-name", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if p, err := device.CanonicalName(path); err != nil || p != path {
				b.Fatal(p, err)
			}
		}
	})
	b.Run("sweep", func(b *testing.B) {
		o, _ := Options{ManualCheckpoint: true}.withDefaults()
		st := &Store{path: path, opts: o, lease: lease.PlaceFor(device.OS, path)}
		for i := 0; i < b.N; i++ {
			st.sweepDead()
		}
	})
}
