package lease

import (
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// checkPrivate: the endpoint is one of our pipes and its DACL holds one
// ACE, allowing this process's user and nobody else.
func checkPrivate(t *testing.T, endpoint string) {
	t.Helper()
	if !strings.HasPrefix(endpoint, PipePrefix) {
		t.Fatalf("endpoint %q is not a pipe named %s...", endpoint, PipePrefix)
	}
	name, err := windows.UTF16PtrFromString(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// Opening the pipe for READ_CONTROL connects as a client; the server
	// sees a client that says nothing, and drops it.
	h, err := windows.CreateFile(name, windows.READ_CONTROL, 0, nil, windows.OPEN_EXISTING, 0, 0)
	if err != nil {
		t.Fatalf("open %s: %v", endpoint, err)
	}
	defer windows.CloseHandle(h)
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatalf("security of %s: %v", endpoint, err)
	}
	t.Logf("%s: %s", endpoint, sd)
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("%s has no DACL (%v): anyone may open it", endpoint, err)
	}
	me, err := userSID(windows.GetCurrentProcessToken())
	if err != nil {
		t.Fatal(err)
	}
	if dacl.AceCount != 1 {
		t.Fatalf("%s: DACL has %d ACEs; want 1, for %s only", endpoint, dacl.AceCount, me)
	}
	var ace *windows.ACCESS_ALLOWED_ACE
	if err := windows.GetAce(dacl, 0, &ace); err != nil {
		t.Fatal(err)
	}
	sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
	if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || !windows.EqualSid(sid, me) {
		t.Fatalf("%s: the ACE (type %d) is for %s; want allow for %s", endpoint, ace.Header.AceType, sid, me)
	}
}
