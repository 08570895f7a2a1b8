package lease

import "github.com/ejectsafe/ejectsafe/layout"

// LockSuffix names the OS lock file a Store holds next to its database
// (flock on unix) for as long as it has the database open.
const LockSuffix = layout.LockSuffix

// Dead reports whether l's holder is proven gone from this host, and why:
// the lease is from this host, and from an earlier boot of it, or its pid
// is not running, runs another process, or has exited (a zombie). A lease
// from another host is stale (Stale) but not proven dead: nothing here
// can see that host's processes. Callers that remove a dead lease also
// check LockFree, which proves no process on this host holds the
// database whatever the pid says (a holder in another pid namespace).
func (l Lease) Dead() (bool, string) {
	me, err := Me()
	if err != nil || l.Host != me.Host {
		return false, ""
	}
	return l.Stale()
}

// LockFree reports whether no process on this host holds the OS lock of
// the database at dbPath, by trying it without blocking and releasing it
// at once; a missing lock file is free. It never creates or follows
// anything but the lock file itself, and refuses anything but a regular
// file there (a lease names dbPath, and a lease is read from the drive).
//
// Taking the lock, even for an instant, can make a Store opening the same
// database at that very instant fail with ErrLocked; call it only for a
// database whose lease is already suspected dead.
func LockFree(dbPath string) (bool, error) {
	return lockFree(dbPath + LockSuffix)
}

// Endpoint is a control socket in the runtime directory.
type Endpoint struct {
	Path string // the socket
	PID  int    // the pid in its name: the process that made it
}
