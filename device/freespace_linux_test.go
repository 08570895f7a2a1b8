package device

import (
	"errors"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// TestOS_FreeSpaceUnknown: fusefat's statfs reports no sizes on FAT32; FreeSpace
// says it does not know, rather than "0 bytes free".
func TestOS_FreeSpaceUnknown(t *testing.T) {
	realfs.Skip(t, realfs.VFAT)
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.VFAT, SizeMiB: 64}) // FAT32: its statfs answers zeros
	if err != nil {
		t.Fatal(err)
	}
	n, err := OS.FreeSpace(vol.Mount)
	if !errors.Is(err, ErrFreeSpaceUnknown) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("FreeSpace on fusefat = %d, %v; want ErrFreeSpaceUnknown", n, err)
	}
	if n, err := OS.FreeSpace(t.TempDir()); err != nil || n <= 0 {
		t.Fatalf("FreeSpace on the test directory = %d, %v", n, err)
	}
}
