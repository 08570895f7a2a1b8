package device

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseProcLocks(t *testing.T) {
	const table = `1: POSIX  ADVISORY  WRITE 111 00:2f:1234567 0 EOF
2: FLOCK  ADVISORY  WRITE 222 08:01:99 0 EOF
3: FLOCK  ADVISORY  WRITE 333 00:2f:12345678 0 EOF
4: OFDLCK ADVISORY  WRITE -1 00:2f:1234567 0 EOF
5: FLOCK  ADVISORY  WRITE 0 00:2f:1234567 0 EOF
6: FLOCK  ADVISORY  WRITE 12345 00:2f:1234567 0 EOF
6: -> FLOCK  ADVISORY  WRITE 54321 00:2f:1234567 0 EOF
`
	tests := []struct {
		name         string
		table        string
		major, minor uint32
		ino          uint64
		want         int
	}{
		{"holder, not waiter or posix", table, 0, 0x2f, 1234567, 12345},
		{"hex major minor", table, 8, 1, 99, 222},
		{"other inode", table, 0, 0x2f, 7, 0},
		{"other device", table, 0, 0x30, 1234567, 0},
		{"only a waiter", "1: -> FLOCK  ADVISORY  WRITE 54321 00:2f:7 0 EOF\n", 0, 0x2f, 7, 0},
		{"garbage", "junk\n1: FLOCK\n1: FLOCK ADVISORY WRITE x 00:2f:7 0 EOF\n", 0, 0x2f, 7, 0},
		{"empty", "", 0, 0x2f, 7, 0},
		{"wide minor", "1: FLOCK  ADVISORY  WRITE 42 103:1a2b:7 0 EOF\n", 0x103, 0x1a2b, 7, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseProcLocks(strings.NewReader(tt.table), tt.major, tt.minor, tt.ino)
			if got != tt.want {
				t.Errorf("parseProcLocks = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDevDropsFsync(t *testing.T) {
	const table = `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
42 22 0:39 / /media/fat rw,nosuid,nodev,relatime - fuse.fusefat fusefat rw,user_id=0,group_id=0
43 22 7:0 / /media/exfat rw,nosuid,nodev,relatime - fuseblk /dev/loop0 rw,user_id=0,group_id=0
44 22 0:40 / /media/plain rw,relatime - fuse fusefat rw,user_id=0,group_id=0
45 22 0:41 / /media/sshfs rw,relatime - fuse.sshfs host:/ rw,user_id=0,group_id=0
`
	tests := []struct {
		name         string
		major, minor uint32
		want         bool
	}{
		{"fuse.fusefat", 0, 39, true},
		{"fusefat without subtype", 0, 40, true},
		{"exfat-fuse fsyncs its device", 7, 0, false},
		{"sshfs", 0, 41, false},
		{"ext4", 8, 1, false},
		{"no such mount", 0, 99, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := devDropsFsync(strings.NewReader(table), unix.Mkdev(tt.major, tt.minor))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("devDropsFsync(%d:%d) = %v, want %v", tt.major, tt.minor, got, tt.want)
			}
		})
	}
}

// TestOSFile_Sync_noFlushOnOrdinaryFS checks that fsync on an ordinary
// filesystem does not call sync(2), and that the answer is cached.
func TestOSFile_Sync_noFlushOnOrdinaryFS(t *testing.T) {
	dir := t.TempDir()
	f, err := OS.Create(filepath.Join(dir, "f"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := fsyncFlushes.Load()
	for i := 0; i < 3; i++ {
		if err := f.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if err := OS.SyncDir(dir); err != nil {
			t.Fatalf("SyncDir: %v", err)
		}
	}
	if got := fsyncFlushes.Load() - before; got != 0 {
		t.Errorf("%d sync(2) calls on %s, want 0", got, dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	dropCache.mu.Lock()
	_, cached := dropCache.byDev[st.Dev]
	dropCache.mu.Unlock()
	if !cached {
		t.Errorf("device %d of %s not cached after Sync", st.Dev, dir)
	}
}
