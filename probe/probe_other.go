//go:build !(linux || darwin || freebsd || windows)

package probe

import "runtime"

// probePlatform knows nothing about mounts on this platform: Result keeps
// only its Path, Class stays Unknown (so Verdict warns), and a Note
// says why.
func probePlatform(p *Result) error {
	p.Notes = append(p.Notes, "filesystem probing is not implemented on "+runtime.GOOS)
	return nil
}
