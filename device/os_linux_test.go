package device

import (
	"strings"
	"testing"
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
