//go:build !(linux || darwin || freebsd || windows)

package device

import "runtime"

// probePlatform knows nothing about mounts on this platform: Probe keeps
// only its Path, Class stays ClassUnknown (so Verdict warns), and a Note
// says why.
func probePlatform(p *Probe) error {
	p.Notes = append(p.Notes, "filesystem probing is not implemented on "+runtime.GOOS)
	return nil
}
