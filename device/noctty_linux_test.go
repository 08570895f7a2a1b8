package device

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const nocttyChildEnv = "EJECTSAFE_DEVICE_NOCTTY_TTY"

// ttyNr is field 7 of /proc/self/stat: the controlling terminal, 0 if none.
func ttyNr() (string, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return f[4], nil
}

// TestOS_OpenNoCTTY (review of issue 17): a terminal planted on the
// drive under a database's name is refused (not a regular file), and
// opening it on the way does not make it the controlling terminal of a
// process without one (a session leader: a daemon holding a store). The
// child, a new session, opens a pty's slave through OS.Open; before
// O_NOCTTY the kernel gave the child that terminal.
func TestOS_OpenNoCTTY(t *testing.T) {
	if tty := os.Getenv(nocttyChildEnv); tty != "" {
		before, _ := ttyNr()
		_, err := OS.Open(tty, ReadOnly)
		after, _ := ttyNr()
		fmt.Printf("open: %v\nctty before %s after %s\n", err, before, after)
		os.Exit(0)
	}
	ptmx, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("SKIP LOUDLY: no pty here: %v", err)
	}
	defer unix.Close(ptmx)
	if err := unix.IoctlSetPointerInt(ptmx, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(ptmx, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty := fmt.Sprintf("/dev/pts/%d", n)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOS_OpenNoCTTY$")
	cmd.Env = append(os.Environ(), nocttyChildEnv+"="+tty)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "not a regular file") && !strings.Contains(string(out), ErrNotRegular.Error()) {
		t.Errorf("a terminal opened as a database file was not refused:\n%s", out)
	}
	if !strings.Contains(string(out), "ctty before 0 after 0") {
		t.Errorf("opening a terminal on the drive made it the controlling terminal:\n%s", out)
	}
}
