//go:build unix

package store

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStore_ejectAnsweredFirst: an application that polls its database
// and exits on the first ErrEjected (as the CLI tests' holders do) must
// not take the eject's answer down with it: when the first call returns
// ErrEjected, the answer is already in the asker's socket. Read without
// waiting (MSG_DONTWAIT), so that an answer written a moment later does
// not pass. It failed before the answer gate (answer.go): the connector
// said ErrEjected before the Store released its files and answered.
func TestStore_ejectAnsweredFirst(t *testing.T) {
	s, _ := openT(t, &Options{ManualCheckpoint: true})
	if s.endpoint == nil {
		t.Fatalf("no control endpoint: %v", s.Stats().LeaseError)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x); INSERT INTO t VALUES (1)")
	c, err := net.Dial("unix", s.endpoint.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, err := json.Marshal(map[string]string{"op": "eject", "db": s.Path()}) // with the database asked for, for endpoints that check it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(append(req, '\n')); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		err := s.DB().Ping()
		if errors.Is(err, ErrEjected) {
			break
		}
		if err != nil {
			t.Fatalf("Ping during the eject: %v", err)
		}
		if time.Now().After(deadline) { // a hang detector, not a speed check
			t.Fatal("the eject never happened")
		}
	}
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if rerr != nil || n <= 0 || !strings.Contains(string(buf[:n]), `"ok":true`) {
		t.Fatalf("when Ping first said ErrEjected the asker's socket held %q (%v); want the answer {\"ok\":true}", buf[:max(n, 0)], rerr)
	}
}
