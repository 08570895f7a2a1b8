package mountinfo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// loadMountinfo parses a fixture from testdata.
func loadMountinfo(t *testing.T, name string) (entries []Entry, skipped int) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, skipped, err = Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return entries, skipped
}

func TestParseMountinfoLine(t *testing.T) {
	line := `40 27 8:17 / /run/media/alice/USB\040STICK rw,nosuid,relatime shared:150 master:3 - vfat /dev/sdb1 rw,uid=1000,flush`
	got, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{
		ID: 40, Parent: 27, Major: 8, Minor: 17, Root: "/",
		MountPoint:   "/run/media/alice/USB STICK",
		MountOptions: []string{"rw", "nosuid", "relatime"},
		Optional:     []string{"shared:150", "master:3"},
		FSType:       "vfat", Source: "/dev/sdb1",
		SuperOptions: []string{"rw", "uid=1000", "flush"},
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("ParseLine =\n%s\nwant\n%s", gj, wj)
	}
	if got, want := got.Options(), []string{"rw", "nosuid", "relatime", "uid=1000", "flush"}; !slices.Equal(got, want) {
		t.Errorf("options() = %q, want %q", got, want)
	}

	for _, bad := range []string{
		"",
		"this line is not mountinfo",
		"1 2 8:1 / /mnt rw shared:1 ext4 /dev/sda1 rw",   // no separator
		"x 2 8:1 / /mnt rw - ext4 /dev/sda1 rw",          // bad id
		"1 2 81 / /mnt rw - ext4 /dev/sda1 rw",           // bad dev
		"1 2 8:1 / mnt rw - ext4 /dev/sda1 rw",           // relative mount point
		"1 2 8:1 / /mnt rw -",                            // nothing after the separator
		"1 2 8:1 / /mnt rw - ext4",                       // no source
		"1 2 8:1:3 / /mnt rw - ext4 /dev/sda1 rw",        // three-part dev
		"1 2 -8:1 / /mnt rw - ext4 /dev/sda1 rw",         // negative major
		"1 2 8:99999999999 / /mnt rw - ext4 /dev/sda rw", // minor overflows
	} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) succeeded", bad)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/USB\040STICK`, `/USB STICK`},
		{`/a\011b\012c`, "/a\tb\nc"},
		{`/back\134slash`, `/back\slash`},
		{`/trailing\04`, `/trailing\04`},
		{`/not\0x0octal`, `/not\0x0octal`},
		{`/too\777big`, `/too\777big`},
		{`\040\040`, `  `},
	} {
		if got := unescape(tt.in); got != tt.want {
			t.Errorf("unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFindMount_container(t *testing.T) {
	entries, skipped := loadMountinfo(t, "mountinfo_container.txt")
	if skipped != 2 || len(entries) != 8 {
		t.Fatalf("parsed %d entries, skipped %d; want 8, 2", len(entries), skipped)
	}
	for _, tt := range []struct{ path, mountPoint, fstype, root string }{
		{"/app/data.db", "/", "overlay", "/"},
		{"/data/app.db", "/data", "ext4", "/home/alice/data"},
		{"/dev/shm/x", "/dev/shm", "tmpfs", "/"},
		{"/etc/resolv.conf", "/etc/resolv.conf", "ext4", "/var/lib/docker/containers/9a8b/resolv.conf"},
		// Two mounts on /data/usb: the later one is on top.
		{"/data/usb/app.db", "/data/usb", "tmpfs", "/"},
	} {
		i := Find(entries, tt.path)
		if i < 0 {
			t.Errorf("Find(%q) found nothing", tt.path)
			continue
		}
		m := entries[i]
		if m.MountPoint != tt.mountPoint || m.FSType != tt.fstype || m.Root != tt.root {
			t.Errorf("Find(%q) = %q %s root %q, want %q %s root %q",
				tt.path, m.MountPoint, m.FSType, m.Root, tt.mountPoint, tt.fstype, tt.root)
		}
	}
	if got := Find(nil, "/x"); got != -1 {
		t.Errorf("Find(nil) = %d, want -1", got)
	}
}

func TestParseMountinfo_longLine(t *testing.T) {
	// Overlay lines with many layers exceed bufio.Scanner's 64 KiB.
	lower := strings.Repeat("/var/lib/docker/overlay2/l/ABCDEFGHIJKLMNOPQRSTUVWXYZ:", 2000)
	in := "1 0 0:60 / / rw - overlay overlay rw,lowerdir=" + lower + "x\n2 1 0:5 / /dev rw - tmpfs tmpfs rw"
	entries, skipped, err := Parse(strings.NewReader(in))
	if err != nil || skipped != 0 || len(entries) != 2 {
		t.Fatalf("Parse: %d entries, %d skipped, %v; want 2, 0, nil", len(entries), skipped, err)
	}
}
