package store

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestFileURI(t *testing.T) {
	type tc struct{ path, query, want string }
	cases := []tc{
		{"/media/usb/app.db", "", "file:///media/usb/app.db"},
		{"/media/usb/app.db", "vfs=x&a=1", "file:///media/usb/app.db?vfs=x&a=1"},
		{"/media/a?b#c%d/app.db", "", "file:///media/a%3Fb%23c%25d/app.db"},
	}
	if runtime.GOOS == "windows" {
		cases = []tc{
			{`C:\Users\me\app.db`, "vfs=x", "file:///C:/Users/me/app.db?vfs=x"},
			{`E:\a b\app.db`, "", "file:///E:/a%20b/app.db"},
			{`E:\a#c%d\app.db`, "x=1", "file:///E:/a%23c%25d/app.db?x=1"},
		}
	}
	for _, c := range cases {
		if got := FileURI(c.path, c.query); got != c.want {
			t.Errorf("FileURI(%q, %q) = %q; want %q", c.path, c.query, got, c.want)
		}
	}
	// A relative path is made absolute: never "file://rel/...", which
	// SQLite reads as an authority.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	got := FileURI(filepath.Join("rel", "app.db"), "mode=ro")
	if want := FileURI(filepath.Join(wd, "rel", "app.db"), "mode=ro"); got != want || !strings.HasPrefix(got, "file:///") {
		t.Errorf("relative: FileURI = %q; want %q", got, want)
	}
}
