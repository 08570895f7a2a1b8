//go:build unix

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

// Endpoints lists the control sockets in this user's runtime directories
// (the names Listen makes; the alternatives runtimeDir uses when the first
// is squatted too), sorted by directory then name, with the pid each name carries: the
// holders on this host, found without reading any drive.
func Endpoints() ([]Endpoint, error) {
	var eps []Endpoint
	for _, dir := range runtimeDirs() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			m := endpointName.FindStringSubmatch(e.Name())
			if m == nil || e.Type()&fs.ModeSocket == 0 {
				continue
			}
			pid, _ := strconv.Atoi(m[1])
			eps = append(eps, Endpoint{Path: filepath.Join(dir, e.Name()), PID: pid})
		}
	}
	return eps, nil
}
