//go:build !linux

package device

import "os"

// Volume only checks that path exists on platforms without a way to find
// the mount or the volume serial here yet: the VolumeID is zero (unknown),
// and callers rely on their own identity checks.
func (osFS) Volume(path string, serial bool) (VolumeID, error) {
	if _, err := os.Stat(path); err != nil {
		return VolumeID{}, err
	}
	v := VolumeID{}
	if serial {
		v.Source = "unknown: no volume serial lookup on this platform"
	}
	return v, nil
}
