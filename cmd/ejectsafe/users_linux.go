package main

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// procRoot is /proc; tests do not change it.
const procRoot = "/proc"

// volumeUsers lists the processes other than this one with files open
// below mountPoint, found from /proc/*/{fd,cwd,root,exe,maps} by the
// paths the kernel reports (readlink: nothing on the volume is touched,
// so a dead drive cannot hang it). skipped counts processes that could
// not be inspected (another user's, without root).
func volumeUsers(mountPoint string) (users []user, skipped int, err error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, 0, err
	}
	self := os.Getpid() // this command: it holds nothing there and is about to exit
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		u, ok, denied := inspect(pid, mountPoint)
		if denied {
			skipped++
		}
		if ok {
			users = append(users, u)
		}
	}
	sort.Slice(users, func(i, j int) bool { return users[i].PID < users[j].PID })
	return users, skipped, nil
}

// inspect returns what process pid has open below mp.
func inspect(pid int, mp string) (u user, found, denied bool) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	seen := map[string]bool{}
	add := func(what, p string) {
		p = strings.TrimSuffix(p, " (deleted)")
		if !underPath(p, mp) {
			return
		}
		name := p
		if what != "" {
			name = what + ": " + p
		}
		if !seen[name] {
			seen[name] = true
			u.Files = append(u.Files, name)
		}
	}
	for _, link := range []string{"cwd", "root", "exe"} {
		p, err := os.Readlink(filepath.Join(dir, link))
		if os.IsPermission(err) {
			denied = true
		}
		if err == nil {
			add(link, p)
		}
	}
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if os.IsPermission(err) {
		denied = true
	}
	for _, fd := range fds {
		if p, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil {
			add("", p)
		}
	}
	if f, err := os.Open(filepath.Join(dir, "maps")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// address perms offset dev inode pathname
			fields := strings.SplitN(sc.Text(), " ", 6)
			if len(fields) == 6 {
				if p := strings.TrimLeft(fields[5], " "); strings.HasPrefix(p, "/") {
					add("mapped", p)
				}
			}
		}
		f.Close()
	}
	if len(u.Files) == 0 {
		return u, false, denied
	}
	u.PID = pid
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		u.Command = strings.TrimSpace(string(b))
	}
	sort.Strings(u.Files)
	return u, true, denied
}
