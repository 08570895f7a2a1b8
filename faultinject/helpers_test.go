package faultinject

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
)

// newVol returns an FS with the directory /vol.
func newVol(t testing.TB, opts Options) *FS {
	t.Helper()
	f := New(opts)
	if err := f.MkdirAll("/vol"); err != nil {
		t.Fatal(err)
	}
	return f
}

// mustWriteFile writes a durable file.
func mustWriteFile(t testing.TB, f *FS, name, data string) {
	t.Helper()
	if err := f.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustCreate(t testing.TB, f *FS, name string) device.File {
	t.Helper()
	h, err := f.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustOpen(t testing.TB, f *FS, name string, mode device.OpenMode) device.File {
	t.Helper()
	h, err := f.Open(name, mode)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustWrite(t testing.TB, h device.File, off int64, data string) {
	t.Helper()
	if _, err := h.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
}

func mustSync(t testing.TB, h device.File) {
	t.Helper()
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// content returns a file's content in f, or "<missing>".
func content(t testing.TB, f *FS, name string) string {
	t.Helper()
	b, err := f.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameFiles reports whether two FSs hold the same files, byte for byte.
func sameFiles(a, b *FS) bool {
	fa, fb := a.Files(), b.Files()
	if len(fa) != len(fb) {
		return false
	}
	for name, da := range fa {
		db, ok := fb[name]
		if !ok || !bytes.Equal(da, db) {
			return false
		}
	}
	return true
}
