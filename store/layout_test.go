package store

import (
	"testing"

	"github.com/ejectsafe/ejectsafe/layout"
)

// TestLayout_cNames: the names the C half spells itself are the ones in
// layout's table, so that a change to either is caught here.
func TestLayout_cNames(t *testing.T) {
	if cJournalSuffix != layout.RollbackSuffix || cWALSuffix != layout.WALSuffix {
		t.Errorf("shim.h: journal %q, WAL %q; layout: %q, %q", cJournalSuffix, cWALSuffix, layout.RollbackSuffix, layout.WALSuffix)
	}
	if hlMoving != layout.HostLogMovingSuffix {
		t.Errorf("hostlog.h ES_HL_MOVING = %q, layout.HostLogMovingSuffix = %q", hlMoving, layout.HostLogMovingSuffix)
	}
}
