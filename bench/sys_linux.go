//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procField returns the number after "name:" in a /proc file such as
// /proc/self/io or /proc/self/status, or -1.
func procField(file, name string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			return -1
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return -1
		}
		if len(fs) > 1 && fs[1] == "kB" {
			n <<= 10
		}
		return n
	}
	return -1
}

// bytesWritten is the bytes this process passed to write-type system
// calls so far (write, pwrite, copy_file_range: "wchar" in
// /proc/self/io), or -1 where the platform does not say.
func bytesWritten() int64 { return procField("/proc/self/io", "wchar") }

// peakRSS is this process's peak resident set size (VmHWM), or -1.
func peakRSS() int64 { return procField("/proc/self/status", "VmHWM") }

// memTotal is the machine's memory in bytes, or 0.
func memTotal() int64 { return max(procField("/proc/meminfo", "MemTotal"), 0) }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if k, v, ok := strings.Cut(string(line), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return "Linux " + unix.ByteSliceToString(u.Release[:])
}

// dropCache asks the kernel to evict path's clean pages from the page
// cache, so that the next reads come from the drive. It reports whether
// it could.
func dropCache(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) == nil
}
