package lease

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// LockSuffix names the OS lock file a Store holds next to its database
// (flock on unix) for as long as it has the database open.
const LockSuffix = ".ejectsafe-lock"

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

// EndpointGone reports whether the control socket at endpoint is proven
// to have no server: it is missing, or a connection to it is refused (a
// Unix socket refuses only when nothing listens on it). A server that is
// slow or busy is not gone.
func EndpointGone(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", endpoint)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist)
}

// endpointName matches the sockets Listen makes: "<pid>-<hex>.sock".
var endpointName = regexp.MustCompile(`^([0-9]+)-[0-9a-f]+\.sock$`)

// endpointGrace is how old a refusing socket must be, when the pid in its
// name runs, before it is removed: a server between bind and listen
// refuses connections too.
const endpointGrace = 10 * time.Second

// SweepEndpoints removes the control sockets in this user's runtime
// directory whose server is proven gone: the connection is refused, and
// the pid in the socket's name is not running, has exited, or the socket
// is older than a few seconds (a server between bind(2) and listen(2)
// refuses too). A holder killed with SIGKILL leaves its socket behind;
// nothing else ever removes it. Only names Listen makes are considered.
func SweepEndpoints() (removed []string, err error) {
	eps, err := Endpoints()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ep := range eps {
		if !EndpointGone(ep.Path) {
			continue
		}
		fi, err := os.Lstat(ep.Path)
		if err != nil {
			continue // removed meanwhile
		}
		if _, serr := startTime(ep.PID); serr == nil && !exited(ep.PID) && time.Since(fi.ModTime()) < endpointGrace {
			continue // perhaps a server being set up
		}
		if err := os.Remove(ep.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ep.Path)
	}
	return removed, errors.Join(errs...)
}

// Endpoints lists the control sockets in this user's runtime directory
// (the names Listen makes), sorted, with the pid each name carries: the
// holders on this host, found without reading any drive.
func Endpoints() ([]Endpoint, error) {
	dir, err := runtimeDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var eps []Endpoint
	for _, e := range entries {
		m := endpointName.FindStringSubmatch(e.Name())
		if m == nil || e.Type()&fs.ModeSocket == 0 {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		eps = append(eps, Endpoint{Path: filepath.Join(dir, e.Name()), PID: pid})
	}
	return eps, nil
}

// Endpoint is a control socket in the runtime directory.
type Endpoint struct {
	Path string // the socket
	PID  int    // the pid in its name: the process that made it
}
