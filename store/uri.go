package store

import (
	"net/url"
	"path/filepath"
)

// FileURI is the SQLite "file:" URI naming the database at path, with
// query (without "?") as its parameters: every place that hands SQLite a
// path goes through it. Characters SQLite would read as URI syntax ('?',
// '#', '%') are escaped. A Windows path with a drive letter, C:\dir\app.db,
// becomes file:///C:/dir/app.db: SQLite refuses an authority ("C:"), and
// reads "/C:/dir/app.db", which its Windows VFS and this package's shim
// both take as C:\dir\app.db. Unix paths are unchanged: file:///dir/app.db.
// A relative path is made absolute first (file:rel/app.db would be read
// with "rel" as an authority).
func FileURI(path, query string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	p := filepath.ToSlash(path)
	if filepath.VolumeName(path) != "" && p[0] != '/' {
		p = "/" + p
	}
	return (&url.URL{Scheme: "file", Path: p, RawQuery: query}).String()
}
