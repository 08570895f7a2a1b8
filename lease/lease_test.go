package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject"
)

const peerChildEnv = "EJECTSAFE_LEASE_PEER_CHILD"

func TestMain(m *testing.M) {
	if sock := os.Getenv(peerChildEnv); sock != "" {
		resp, err := Ask(context.Background(), sock, Request{Op: "status"})
		fmt.Printf("resp=%+v err=%v\n", resp, err)
		os.Exit(0)
	}
	if sock := os.Getenv(serveChildEnv); sock != "" {
		os.Exit(serveChild(sock))
	}
	os.Exit(m.Run())
}

// serveChildEnv makes the test binary serve a fakeHandler at its value
// until its stdin closes (TestServer_rootMayAsk).
const serveChildEnv = "EJECTSAFE_LEASE_SERVE"

func serveChild(sock string) int {
	srv, err := ListenAt(sock, &fakeHandler{})
	if err != nil {
		println("listen:", err.Error())
		return 1
	}
	println("ready")
	var b [1]byte
	os.Stdin.Read(b[:])
	srv.Close()
	return 0
}

func valid() Lease {
	return Lease{Version: 1, DB: "notes/app.db", PID: 1234, Start: 99, Host: "laptop", Boot: "b00t",
		State: StateOpen, Endpoint: "/run/user/1000/ejectsafe/1234-ab.sock", Since: time.Unix(1700000000, 0).UTC()}
}

func TestParse_roundTrip(t *testing.T) {
	want := valid()
	b, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestLease_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Lease)
	}{
		{"version", func(l *Lease) { l.Version = 2 }},
		{"empty db", func(l *Lease) { l.DB = "" }},
		{"absolute db", func(l *Lease) { l.DB = "/etc/passwd" }},
		{"escaping db", func(l *Lease) { l.DB = "../../etc/passwd" }},
		{"dotdot db", func(l *Lease) { l.DB = ".." }},
		{"unclean db", func(l *Lease) { l.DB = "a/../../b" }},
		{"backslash db", func(l *Lease) { l.DB = `..\x` }},
		{"control in db", func(l *Lease) { l.DB = "a\x00b" }},
		{"huge db", func(l *Lease) { l.DB = strings.Repeat("a/", 600) + "x" }},
		{"pid 0", func(l *Lease) { l.PID = 0 }},
		{"pid huge", func(l *Lease) { l.PID = 1 << 30 }},
		{"no host", func(l *Lease) { l.Host = "" }},
		{"host control", func(l *Lease) { l.Host = "a\nb" }},
		{"long boot", func(l *Lease) { l.Boot = strings.Repeat("b", 65) }},
		{"state", func(l *Lease) { l.State = "mine" }},
		{"relative endpoint", func(l *Lease) { l.Endpoint = "x.sock" }},
		{"endpoint not a socket", func(l *Lease) { l.Endpoint = "/etc/shadow" }},
		{"long endpoint", func(l *Lease) { l.Endpoint = "/" + strings.Repeat("e", 110) + ".sock" }},
		{"another pipe", func(l *Lease) { l.Endpoint = `\\.\pipe\lsass` }},
		{"remote pipe", func(l *Lease) { l.Endpoint = `\\server\pipe\ejectsafe-1-ab` }},
		{"pipe bare prefix", func(l *Lease) { l.Endpoint = PipePrefix }},
		{"pipe path", func(l *Lease) { l.Endpoint = PipePrefix + `1\..\x` }},
		{"pipe upper case", func(l *Lease) { l.Endpoint = PipePrefix + "1-AB" }},
		{"long pipe", func(l *Lease) { l.Endpoint = PipePrefix + strings.Repeat("a", 65) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := valid()
			tc.edit(&l)
			if err := l.Validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate(%+v) = %v; want ErrInvalid", l, err)
			}
		})
	}
	t.Run("files", func(t *testing.T) {
		good, _ := valid().Encode()
		for name, b := range map[string][]byte{
			"unknown field": bytes.Replace(good, []byte(`"version"`), []byte(`"evil":1,"version"`), 1),
			"trailing":      append(append([]byte{}, good...), []byte(`{"x":1}`)...),
			"oversized":     append(good, bytes.Repeat([]byte(" "), MaxSize)...),
			"garbage":       []byte("\x00\xff not json"),
			"empty":         nil,
			"array":         []byte(`[1,2,3]`),
		} {
			if _, err := Parse(b); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: Parse = %v; want ErrInvalid", name, err)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	good, _ := valid().Encode()
	f.Add(good)
	f.Add([]byte(`{"version":1,"db":"../x","pid":1,"start":0,"host":"h","boot":"","state":"open","endpoint":"","since":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte("null"))
	f.Add(bytes.Repeat([]byte("["), 5000))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error outside the known set: %v", err)
			}
			return
		}
		// A lease that parses is valid, never escapes the volume, and
		// round-trips.
		if filepath.IsAbs(l.DB) || strings.HasPrefix(filepath.Clean(l.DB), "..") {
			t.Fatalf("parsed a lease whose db escapes: %q", l.DB)
		}
		enc, err := l.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		l2, err := Parse(enc)
		if err != nil || !l2.Since.Equal(l.Since) {
			t.Fatalf("round trip: %v", err)
		}
		l2.Since = l.Since
		if l2 != l {
			t.Fatalf("round trip changed the lease: %+v -> %+v", l, l2)
		}
	})
}

func mine(t *testing.T) Lease {
	t.Helper()
	me, err := Me()
	if err != nil {
		t.Fatal(err)
	}
	l := valid()
	l.PID, l.Start, l.Host, l.Boot = me.PID, me.Start, me.Host, me.Boot
	return l
}

func TestLease_Stale(t *testing.T) {
	l := mine(t)
	if stale, why := l.Stale(); stale {
		t.Fatalf("this process's own lease is stale: %s", why)
	}
	reused := l
	reused.Start++
	if stale, why := reused.Stale(); !stale || !strings.Contains(why, "reused") {
		t.Errorf("pid reuse not caught: %v %q", stale, why)
	}
	other := l
	other.Host = "elsewhere-from-the-file"
	if stale, why := other.Stale(); !stale || strings.Contains(why, other.Host) {
		t.Errorf("another host's lease = %v, %q; want stale, without quoting the file's host name", stale, why)
	}
	rebooted := l
	rebooted.Boot = "another-boot"
	if stale, _ := rebooted.Stale(); !stale && l.Boot != "" {
		t.Errorf("a lease from before a reboot is live")
	}
	// A process that has exited: this test binary, running no test.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	dead := l
	dead.PID = cmd.ProcessState.Pid()
	if stale, why := dead.Stale(); !stale {
		t.Errorf("a dead process's lease is live (%s)", why)
	}
}

func TestWrite_readRemove(t *testing.T) {
	fsys := faultinject.New(faultinject.Options{})
	fsys.MkdirAll("/vol")
	p := "/vol/app.db" + FallbackSuffix
	l := mine(t)
	if err := Write(fsys, p, l); err != nil {
		t.Fatal(err)
	}
	// Durable: it survives a power cut right after Write returns.
	got, err := Read(fsys.CrashImage(faultinject.DropAll, 0), p)
	if err != nil || got.PID != l.PID {
		t.Fatalf("after a power cut: %+v, %v", got, err)
	}
	if files := fsys.Files(); len(files) != 1 {
		t.Errorf("Write left %d files: %v", len(files), files)
	}
	if err := Remove(fsys, p); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(fsys.CrashImage(faultinject.DropAll, 0), p); err == nil {
		t.Errorf("the removed lease is back after a power cut")
	}
	// An oversized file is refused without being read whole.
	fsys.WriteFile(p, bytes.Repeat([]byte("x"), MaxSize+1), 0o644)
	if _, err := Read(fsys, p); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized lease: %v", err)
	}
}

type fakeHandler struct {
	refuse error
	ejects int
}

func (h *fakeHandler) Status() Status {
	return Status{DB: "/x/app.db", State: StateOpen, DirtyBytes: 42, VolumeDev: 2049, VolumeMount: 77}
}
func (h *fakeHandler) Eject(ctx context.Context) error {
	h.ejects++
	if h.refuse != nil {
		return &RefusedError{Reason: h.refuse.Error()}
	}
	return nil
}

func TestServer(t *testing.T) {
	h := &fakeHandler{}
	srv, err := Listen(h)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := (Lease{Version: 1, DB: "a.db", PID: 1, Host: "h", State: StateOpen, Endpoint: srv.Endpoint()}).Validate(); err != nil {
		t.Errorf("the endpoint does not fit in a lease: %v", err)
	}
	checkPrivate(t, srv.Endpoint())
	ctx := context.Background()
	resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "status"})
	if err != nil || !resp.OK || resp.Status == nil || resp.Status.DirtyBytes != 42 {
		t.Fatalf("status: %+v, %v", resp, err)
	}
	// An eject for another database, or naming none, releases nothing
	// (issue 17, finding 8: a lease copied or planted on another volume
	// names this endpoint).
	for _, db := range []string{"", "/y/app.db", "/x/other.db"} {
		if resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "eject", DB: db}); err != nil || resp.OK || !strings.Contains(resp.Error, ErrNotHeld.Error()) || h.ejects != 0 {
			t.Fatalf("eject for %q: %+v, %v (ejects %d); want refused as not held", db, resp, err, h.ejects)
		}
	}
	// The same path on another mount (review of issue 17: a volume
	// mounted below the one being ejected) releases nothing either.
	for _, vol := range [][2]uint64{{2050, 77}, {2049, 78}} {
		req := Request{Op: "eject", DB: "/x/app.db", VolumeDev: vol[0], VolumeMount: vol[1]}
		if resp, err := Ask(ctx, srv.Endpoint(), req); err != nil || resp.OK || !strings.Contains(resp.Error, ErrNotHeld.Error()) || h.ejects != 0 {
			t.Fatalf("eject for /x/app.db on volume %v: %+v, %v (ejects %d); want refused as not held", vol, resp, err, h.ejects)
		}
	}
	if resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "eject", DB: "/x/app.db", VolumeDev: 2049, VolumeMount: 77}); err != nil || !resp.OK || h.ejects != 1 {
		t.Fatalf("eject: %+v, %v", resp, err)
	}
	// A client that names no volume (an older CLI) is checked on the
	// path only.
	if resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "eject", DB: "/x/app.db"}); err != nil || !resp.OK || h.ejects != 2 {
		t.Fatalf("eject naming no volume: %+v, %v", resp, err)
	}
	h.refuse = errors.New("a document is being saved")
	if resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "eject", DB: "/x/app.db"}); err != nil || resp.OK || resp.Refused != "a document is being saved" {
		t.Fatalf("refused eject: %+v, %v", resp, err)
	}
	if resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "format the drive"}); err != nil || resp.OK || resp.Error == "" {
		t.Fatalf("unknown op: %+v, %v", resp, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
