package lease

import (
	"context"
	"testing"
	"time"
)

// TestServer_lateClient: a client that comes a while after the endpoint
// started is answered (under Wine, a pipe listener built on an I/O
// completion port hung here).
func TestServer_lateClient(t *testing.T) {
	srv, err := Listen(&fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "status"})
	if err != nil || !resp.OK || resp.Status == nil || resp.Status.DirtyBytes != 42 {
		t.Fatalf("status: %+v, %v", resp, err)
	}
}
