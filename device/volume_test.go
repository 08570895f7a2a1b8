package device

import (
	"encoding/binary"
	"testing"
)

func bootSector(f func(b []byte)) []byte {
	b := make([]byte, bootSectorBytes)
	b[510], b[511] = 0x55, 0xAA
	f(b)
	return b
}

func TestParseSerial(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"exfat", bootSector(func(b []byte) {
			copy(b[3:], exfatName)
			binary.LittleEndian.PutUint32(b[exfatSerialOff:], 0x7B1FA80C)
		}), "7B1F-A80C"},
		{"fat32", bootSector(func(b []byte) {
			b[fat32SigOff] = extBootSig
			copy(b[fat32TypeOff:], "FAT32   ")
			binary.LittleEndian.PutUint32(b[fat32SerialOff:], 0x80C8FAA0)
		}), "80C8-FAA0"},
		{"fat16", bootSector(func(b []byte) {
			b[fat16SigOff] = extBootSig
			copy(b[fat16TypeOff:], "FAT16   ")
			binary.LittleEndian.PutUint32(b[fat16SerialOff:], 0x12345678)
		}), "1234-5678"},
		{"no signature", bootSector(func(b []byte) { b[511] = 0 }), ""},
		{"zero", bootSector(func([]byte) {}), ""},
		{"short", []byte{1, 2, 3}, ""},
		{"nil", nil, ""},
	} {
		if got := parseSerial(tc.b); got != tc.want {
			t.Errorf("%s: parseSerial = %q; want %q", tc.name, got, tc.want)
		}
	}
}

func FuzzParseSerial(f *testing.F) {
	f.Add(bootSector(func(b []byte) { copy(b[3:], exfatName) }))
	f.Fuzz(func(t *testing.T, b []byte) { parseSerial(b) })
}

func TestVolumeOf(t *testing.T) {
	dir := t.TempDir()
	a, err := VolumeOf(OS, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := VolumeOf(OS, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if !a.SameMount(b) || a.Serial == "" && a.Source == "" {
		t.Errorf("VolumeOf twice = %+v, %+v; want the same mount, and a serial or why not", a, b)
	}
	if _, err := VolumeOf(OS, dir+"/missing", false); err == nil {
		t.Error("VolumeOf a missing path: no error")
	}
}
