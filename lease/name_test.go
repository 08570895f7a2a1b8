package lease

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
)

// TestLeaseName: a lease directory's file name carries its holder, is
// judged like the lease itself when the file cannot be read, and must
// agree with the file's content when it can.
func TestLeaseName(t *testing.T) {
	me, err := Me()
	if err != nil {
		t.Fatal(err)
	}
	name := leaseFileName("notes/app.db", me)
	n, ok := parseLeaseName(name)
	if !ok || n.PID != me.PID || n.Start != me.Start {
		t.Fatalf("parseLeaseName(%q) = %+v, %v", name, n, ok)
	}
	if stale, why := n.stale(); stale {
		t.Errorf("this process's name is stale: %s", why)
	}
	reused := n
	reused.Start++
	if stale, why := reused.stale(); !stale || !strings.Contains(why, "reused") {
		t.Errorf("a reused pid in a name: %v, %q", stale, why)
	}
	elsewhere := n
	elsewhere.HostBoot = hostBoot("elsewhere", me.Boot)
	if stale, _ := elsewhere.stale(); !stale {
		t.Errorf("another host's name is live")
	}
	for _, bad := range []string{"0123456789abcdef.json", "fake.json", "0123456789abcdef-0-1-00000000.json", "x" + name} {
		if _, ok := parseLeaseName(bad); ok {
			t.Errorf("parseLeaseName(%q) carries a holder", bad)
		}
	}

	// Readable: the name must name the holder the content does.
	root := t.TempDir()
	dir := filepath.Join(root, DirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := Lease{Version: Version, DB: "notes/app.db", PID: me.PID, Start: me.Start, Host: me.Host, Boot: me.Boot, State: StateOpen}
	if err := Write(device.OS, filepath.Join(dir, name), l); err != nil {
		t.Fatal(err)
	}
	other := l
	other.Start++
	if err := Write(device.OS, filepath.Join(dir, leaseFileName("notes/b.db", me)), other); err != nil {
		t.Fatal(err)
	}
	found := collect(root, root)
	if len(found) != 2 {
		t.Fatalf("found %+v", found)
	}
	for _, f := range found {
		switch filepath.Base(f.File) {
		case name:
			if f.Err != nil || f.Stale {
				t.Errorf("a lease whose name agrees: %+v", f)
			}
		default:
			if !errors.Is(f.Err, ErrInvalid) {
				t.Errorf("a lease whose name names another holder: %+v; want invalid", f)
			}
		}
	}
}
