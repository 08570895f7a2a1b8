//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// silentServer listens on n sockets that accept connections and never
// answer, and records the most connections it had open at once.
type silentServer struct {
	mu       sync.Mutex
	open     int
	most     int
	accepted int
	lns      []net.Listener
}

func (s *silentServer) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.open++
		s.accepted++
		s.most = max(s.most, s.open)
		s.mu.Unlock()
		go func() {
			io.Copy(io.Discard, c) // until the asker gives up and closes
			c.Close()
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
		}()
	}
}

func (s *silentServer) stats() (most, accepted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, a := s.most, s.accepted
	s.most, s.accepted = s.open, 0
	return m, a
}

// silentHolders writes, in dir, n leases of "databases" held by this
// process (a live pid: the leases are not stale), each naming a socket of
// a silentServer. With locked, the test holds each database's OS lock, as
// a Store that hangs would; without, the leases are planted: nobody holds
// the databases.
func silentHolders(t *testing.T, dir string, n int, locked bool) *silentServer {
	t.Helper()
	me, err := lease.Me()
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "es-silent-") // short: a socket path fits in 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	s := &silentServer{}
	for i := 0; i < n; i++ {
		sock := filepath.Join(sockDir, fmt.Sprintf("%02d.sock", i))
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go s.serve(ln)
		db := fmt.Sprintf("db%02d.db", i)
		l := lease.Lease{Version: lease.Version, DB: db, PID: me.PID, Start: me.Start, Host: me.Host,
			Boot: me.Boot, State: lease.StateOpen, Endpoint: sock, Since: time.Now().UTC()}
		if err := lease.Write(device.OS, filepath.Join(dir, db+lease.FallbackSuffix), l); err != nil {
			t.Fatal(err)
		}
		if locked {
			lk, err := device.OS.Lock(filepath.Join(dir, db+lease.LockSuffix))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lk.Close() })
		}
	}
	return s
}

// TestStatus_silentHolders (issue 17, finding 9): 30 leases naming a live
// pid and a socket that accepts but never answers, each database's lock
// held (a hung holder). status, check and eject ask all of them at once
// under one deadline (the silent server sees all 30 connections open
// together), report each as not answering, and return. Before, status
// and check asked one after another, 2 s each (60 s), and the server
// never saw more than one connection at a time.
func TestStatus_silentHolders(t *testing.T) {
	const n = 30
	dir := t.TempDir()
	srv := silentHolders(t, dir, n, true)
	for _, args := range [][]string{{"status", dir}, {"check", dir}, {"eject", "--no-unmount", "--timeout", "1s", dir}} {
		t.Run(args[0], func(t *testing.T) {
			var code int
			var out, errs string
			done := make(chan struct{})
			go func() {
				defer close(done)
				code, out, errs = runCmd(t, args...)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Minute): // a hang detector, not a speed check
				t.Fatalf("%s still running after 5 minutes", args[0])
			}
			most, accepted := srv.stats()
			if accepted < n || most < n {
				t.Errorf("%s: %d connections, at most %d at once; want all %d asked at once", args[0], accepted, most, n)
			}
			want := map[string]int{"status": 0, "check": 1, "eject": 1}[args[0]]
			if code != want {
				t.Errorf("%s exit %d; want %d\n%s%s", args[0], code, want, out, errs)
			}
			if got := strings.Count(out+errs, "no answer") + strings.Count(out+errs, "did not answer"); got < n {
				t.Errorf("%s reports %d holders as not answering; want %d:\n%s%s", args[0], got, n, out, errs)
			}
		})
	}
}

// TestCheck_plantedSilentLeases (finding 9): the same 30 silent leases,
// planted: nobody holds the databases' locks. They hold nothing, and the
// volume is safe to remove (each reported stale: lock free, endpoint
// silent). Before, such leases kept it "not safe to remove" for ever.
func TestCheck_plantedSilentLeases(t *testing.T) {
	const n = 30
	dir := t.TempDir()
	silentHolders(t, dir, n, false)
	code, out, errs := runCmd(t, "check", dir)
	if code != 0 || strings.Count(out, "lock is free and its control endpoint does not answer") != n {
		t.Errorf("check = %d; want 0 with the %d leases stale:\n%s%s", code, n, out, errs)
	}
}

// TestEject_misdirected (finding 8): a drive copied with its lease while
// the holder is live (cp -a) has a lease naming the holder of the other
// copy. eject of the copy asks that holder for its status, finds that it
// holds another database, reports the lease as not followed and releases
// nothing; status says so too. Before, eject of the copy released the
// original's store.
func TestEject_misdirected(t *testing.T) {
	orig, copyDir := t.TempDir(), t.TempDir()
	db := filepath.Join(orig, "held.db")
	holder := startHolder(t, db, "")
	// cp -a of the "drive": the database and its lease.
	for _, name := range []string{"held.db", "held.db" + lease.FallbackSuffix} {
		b, err := os.ReadFile(filepath.Join(orig, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copyDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCmd(t, "eject", "--no-unmount", "--timeout", "10s", copyDir)
	if !strings.Contains(out+errs, "another database") {
		t.Errorf("eject of the copy does not report the misdirected lease (exit %d):\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, "released in") {
		t.Errorf("eject of the copy released a holder:\n%s%s", out, errs)
	}
	// An eject answers once the store is released: the holder's store
	// must still be open now.
	l, err := lease.Read(device.OS, db+lease.FallbackSuffix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if resp, err := lease.Ask(ctx, l.Endpoint, lease.Request{Op: "status"}); err != nil || resp.Status == nil || resp.Status.State != lease.StateOpen || !alive(holder) {
		t.Fatalf("the original's holder after an eject of the copy: %+v, %v; want its store open", resp, err)
	}
	if code, out, _ := runCmd(t, "status", copyDir); !strings.Contains(out, "another database") {
		t.Errorf("status of the copy = %d, does not report the lease as misdirected:\n%s", code, out)
	}
	// The original is still ejected normally.
	if code, out, errs := runCmd(t, "eject", "--no-unmount", orig); code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("eject of the original = %d:\n%s%s", code, out, errs)
	}
}

// slowStatus answers its first status only after the CLI's status
// deadline, and counts the ejects it is asked for.
type slowStatus struct {
	db       string
	statuses atomic.Int32
	ejects   atomic.Int32
}

func (h *slowStatus) Status() lease.Status {
	if h.statuses.Add(1) == 1 {
		time.Sleep(statusTimeout + time.Second)
	}
	return lease.Status{DB: h.db, State: lease.StateOpen}
}

func (h *slowStatus) Eject(context.Context) error {
	h.ejects.Add(1)
	return nil
}

// TestEject_unprovenHolderNotAsked (review of issue 17): a holder that
// did not answer its status in time proved nothing, so eject does not
// ask it to release; it is reported as not answering. Before, it was
// asked all the same, and only its own path check stood between a
// planted lease and a release (a volume mounted below the one ejected
// defeated that check).
func TestEject_unprovenHolderNotAsked(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	h := &slowStatus{db: db}
	srv, err := lease.Listen(h)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	me, err := lease.Me()
	if err != nil {
		t.Fatal(err)
	}
	l := lease.Lease{Version: lease.Version, DB: "app.db", PID: me.PID, Start: me.Start, Host: me.Host,
		Boot: me.Boot, State: lease.StateOpen, Endpoint: srv.Endpoint(), Since: time.Now().UTC()}
	if err := lease.Write(device.OS, db+lease.FallbackSuffix, l); err != nil {
		t.Fatal(err)
	}
	lk, err := device.OS.Lock(db + lease.LockSuffix) // held: not an orphan
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	code, out, errs := runCmd(t, "eject", "--no-unmount", "--timeout", "10s", dir)
	if h.ejects.Load() != 0 {
		t.Errorf("a holder that did not answer its status was asked to eject (exit %d):\n%s%s", code, out, errs)
	}
	if code != 1 || !strings.Contains(out+errs, "not asked to eject") {
		t.Errorf("eject = %d; want 1, the holder reported as not answering:\n%s%s", code, out, errs)
	}
}
