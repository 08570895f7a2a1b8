package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ejectsafe/ejectsafe/lease"
)

// deadMountErrno returns the errno by which a filesystem says its drive
// is gone: ENOTCONN (a FUSE daemon that died: a pulled FUSE drive),
// ENODEV or ENXIO (the device vanished under a kernel filesystem), EIO
// (what a kernel filesystem answers once its device stopped answering).
func deadMountErrno(err error) (syscall.Errno, bool) {
	for _, e := range []syscall.Errno{syscall.ENOTCONN, syscall.ENODEV, syscall.ENXIO, syscall.EIO} {
		if errors.Is(err, e) {
			return e, true
		}
	}
	return 0, false
}

// localHolder is a Store of this user on this host, found through its
// control endpoint rather than through a lease on the drive.
type localHolder struct {
	PID      int          `json:"pid"`
	Endpoint string       `json:"endpoint"`
	Status   lease.Status `json:"status"`
}

// localHolders asks every control endpoint in the runtime directory, in
// parallel, for its status and keeps those whose database is under (or
// is) path. Endpoints that do not answer within timeout are left out.
func localHolders(path string, timeout time.Duration) []localHolder {
	eps, err := lease.Endpoints()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	answers := make([]*lease.Status, len(eps))
	done := make(chan struct{})
	for i, ep := range eps {
		go func() {
			defer func() { done <- struct{}{} }()
			if resp, err := lease.Ask(ctx, ep.Path, lease.Request{Op: "status"}); err == nil && resp.OK && resp.Status != nil {
				answers[i] = resp.Status
			}
		}()
	}
	for range eps {
		<-done
	}
	var hs []localHolder
	for i, st := range answers {
		if st != nil && under(st.DB, path) {
			hs = append(hs, localHolder{PID: eps[i].PID, Endpoint: eps[i].Path, Status: *st})
		}
	}
	return hs
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// resolveAlive resolves the symlinks of the longest prefix of abs that
// can still be resolved: on a dead mount, everything from the mount point
// down fails, but the directories above it (and links among them) do not.
func resolveAlive(abs string) string {
	for p := abs; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			rest, _ := filepath.Rel(p, abs)
			return filepath.Join(r, rest)
		}
		if p == filepath.Dir(p) {
			return abs
		}
	}
}

// deadMount prints, when err says the drive holding path is gone, one
// message saying what happened and what to do, and for status and check
// the live holders on this host of databases under path, with their
// uncheckpointed bytes (asked through their control endpoints: the
// drive's leases cannot be read). It reports whether it did; the command
// then exits 2.
func deadMount(cmd, path string, err error, asJSON bool, stdout, stderr io.Writer) bool {
	errno, ok := deadMountErrno(err)
	if !ok {
		return false
	}
	abs, aerr := filepath.Abs(path)
	if aerr != nil {
		abs = path
	}
	abs = resolveAlive(abs)
	mp := mountPointOf(abs)
	if mp == "/" {
		mp = "" // never advise unmounting the root
	}
	where := mp
	if where == "" {
		where = abs
	}
	what := fmt.Sprintf("the drive holding %s is gone: its filesystem answers %q (%s). It was pulled, lost power or failed, or its driver stopped, while it was mounted.",
		abs, errno.Error(), errnoName(errno))
	todo := fmt.Sprintf("Applications that hold databases on it keep their uncheckpointed commits in memory: leave them running. Unmount what is left (umount -l %s, or udisksctl unmount), plug the drive back in, and run `ejectsafe recover` on each database an application does not take back by itself.", where)
	var holders []localHolder
	if cmd == "status" || cmd == "check" {
		holders = localHolders(abs, 2*time.Second)
	}
	if asJSON {
		writeJSON(stdout, struct {
			header
			DriveGone    bool          `json:"drive_gone"`
			Errno        string        `json:"errno"`
			MountPoint   string        `json:"mount_point,omitempty"`
			What         string        `json:"what_to_do"`
			LocalHolders []localHolder `json:"local_holders"`
		}{errorOut(cmd, 2, what), true, errnoName(errno), mp, todo, nonNil(holders)})
	}
	fmt.Fprintf(stderr, "ejectsafe %s: %s\n  %s\n", cmd, what, todo)
	if asJSON || (cmd != "status" && cmd != "check") {
		return true
	}
	if len(holders) == 0 {
		fmt.Fprintf(stdout, "live holders on this host under %s: none answered\n", abs)
	}
	for _, h := range holders {
		st := h.Status
		fmt.Fprintf(stdout, "held:       %s by pid %d on this host, %s, %s not checkpointed (last checkpoint %s)\n",
			st.DB, h.PID, st.State, bytesStr(st.DirtyBytes), when(st.LastCheckpoint))
	}
	return true
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ENOTCONN:
		return "ENOTCONN"
	case syscall.ENODEV:
		return "ENODEV"
	case syscall.ENXIO:
		return "ENXIO"
	case syscall.EIO:
		return "EIO"
	}
	return fmt.Sprintf("errno %d", int(e))
}
