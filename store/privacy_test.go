package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestStore_checkpointLevelTempInMemory: at Durability Checkpoint every
// connection keeps SQLite's temporary files in memory (temp_store 2), so
// nothing of the database reaches the host's disk; at the host-log
// levels SQLite's default (0) stays. Fails without the setting: 0.
func TestStore_checkpointLevelTempInMemory(t *testing.T) {
	for _, tc := range []struct {
		d    Durability
		want int
	}{{Checkpoint, 2}, {HostLog, 0}} {
		if tc.d == HostLog && !hlSupported() {
			continue
		}
		s, err := Open(filepath.Join(t.TempDir(), "a.db"), &Options{Durability: tc.d, HostDir: filepath.Join(t.TempDir(), "h")})
		if err != nil {
			t.Fatal(err)
		}
		// Several connections of the pool, each asked on its own.
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			c, err := s.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got int
			err = c.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&got)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%v: connection %d: temp_store %d, want %d", tc.d, i, got, tc.want)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
