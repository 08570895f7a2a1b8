package main

import (
	"path/filepath"
	"strings"

	"github.com/ejectsafe/ejectsafe/layout"
)

// user is a process with files open on a volume, as fuser -m finds them:
// open descriptors, working directory, root, executable and mapped files.
type user struct {
	PID     int
	Command string   // /proc/PID/comm
	Holder  bool     // it holds a live lease on the volume
	Files   []string // what it has open there ("cwd: /mnt/x" for a working directory)
}

// underPath reports whether p is dir or lies below it.
func underPath(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// storeFile reports whether p is one of the files a Store on db keeps
// open (the database, its lock, journal and copies, all named after it)
// or its lease directory below root: files an eject makes it release.
func storeFile(p, db, root string) bool {
	p = filepath.Clean(p)
	return strings.HasPrefix(p, db) || underPath(p, filepath.Join(root, layout.StateDir))
}
