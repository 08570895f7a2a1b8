package device_test

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// notNative wraps an FS and says it is not native, as a wrapper that
// changed names would.
type notNative struct{ device.FS }

func (notNative) Native() bool        { return false }
func (n notNative) Unwrap() device.FS { return n.FS }

func TestIsNative(t *testing.T) {
	mem := faultinject.New(faultinject.Options{})
	for _, tt := range []struct {
		name string
		fsys device.FS
		want bool
	}{
		{"OS", device.OS, true},
		{"NewOS", device.NewOS(), true},
		{"a Faulty over the OS", faultinject.Wrap(device.OS, 0), true},
		{"a Faulty over a Faulty over the OS", faultinject.Wrap(faultinject.Wrap(device.OS, 0), 0), true},
		{"the in-memory FS", mem, false},
		{"a Faulty over the in-memory FS", faultinject.Wrap(mem, 0), false},
		{"a wrapper of the OS that says it is not native", notNative{device.OS}, false},
		{"nil", nil, false},
	} {
		if got := device.IsNative(tt.fsys); got != tt.want {
			t.Errorf("IsNative(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestVolumeOf_wrapped: a wrapper of the OS's FS identifies volumes as
// the OS's does.
func TestVolumeOf_wrapped(t *testing.T) {
	dir := t.TempDir()
	want, err := device.VolumeOf(device.OS, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && want.Dev == 0 {
		t.Fatalf("VolumeOf(OS, %s) = %+v: no device number", dir, want)
	}
	got, err := device.VolumeOf(faultinject.Wrap(device.OS, 0), dir, true)
	if err != nil || got != want {
		t.Errorf("VolumeOf(Faulty over OS) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := device.VolumeOf(faultinject.Wrap(faultinject.New(faultinject.Options{}), 0), filepath.Join(dir), false); err != nil || got != (device.VolumeID{}) {
		t.Errorf("VolumeOf(Faulty over the in-memory FS) = %+v, %v; want the zero VolumeID", got, err)
	}
}
