package main

import (
	"os"
	"strconv"
	"strings"
)

// mountPointOf returns the mount point, from /proc/self/mountinfo, that
// holds path (the longest one that is path or above it), or "". A dead
// FUSE mount stays listed there until it is unmounted.
func mountPointOf(path string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	best := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if under(path, mp) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}

// unescapeOctal undoes mountinfo's \NNN escapes (space, tab, newline,
// backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
