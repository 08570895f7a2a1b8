package store

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestFileURI(t *testing.T) {
	type tc struct{ path, query, want string }
	cases := []tc{
		{"/media/usb/app.db", "", "file:///media/usb/app.db"},
		{"/media/usb/app.db", "vfs=x&a=1", "file:///media/usb/app.db?vfs=x&a=1"},
		{"/media/a?b#c%d/app.db", "", "file:///media/a%3Fb%23c%25d/app.db"},
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, tc{"rel/app.db", "mode=ro", FileURI(filepath.Join(wd, "rel", "app.db"), "mode=ro")})
	if runtime.GOOS == "windows" {
		cases = append(cases,
			tc{`C:\Users\me\app.db`, "vfs=x", "file:///C:/Users/me/app.db?vfs=x"},
			tc{`E:\a b\app.db`, "", "file:///E:/a%20b/app.db"},
		)
	}
	for _, c := range cases {
		if got := FileURI(c.path, c.query); got != c.want {
			t.Errorf("FileURI(%q, %q) = %q; want %q", c.path, c.query, got, c.want)
		}
	}
}
