package store

import (
	"slices"

	"github.com/ejectsafe/ejectsafe/checkpoint"
)

// RecoveryReport says what Open found on the drive and did before the
// database was read: after a pull during a checkpoint it rolled the
// checkpoint back or forward and removed what the checkpoint left.
type RecoveryReport struct {
	// Action is "none" (nothing to do), "clean" (leftovers removed or a
	// torn checkpoint journal replaced), "roll_back", "roll_forward",
	// "finish" (an interrupted checkpoint completed), "reset" (the
	// checkpoint journal could vouch for nothing: the database was kept
	// and a new journal written), or "skipped" (a ReadOnly Store runs no
	// recovery).
	Action string
	// Generation is the checkpoint rolled back or forward; 0 if none.
	Generation uint64
	// Removed names the leftover files removed.
	Removed []string
	// KeptAside names checkpoint copies kept under another name because
	// recovery could not prove them useless.
	KeptAside []string
	// Notes are further findings, in words.
	Notes []string
	// HostLog is what Open did with a host log an earlier process left:
	// "" (none, or an empty one), "replayed", or "kept_aside" (its new
	// name is in KeptAside, the reason in HostLogErr).
	HostLog string
	// HostLogErr says why a host log was kept aside: it wraps
	// ErrHostLogForeign, ErrHostLogGeneration, ErrHostLogTorn or
	// ErrHostLogOtherBoot.
	HostLogErr error

	text string
}

// String renders the report on one line.
func (r RecoveryReport) String() string { return r.text }

func newRecoveryReport(rep checkpoint.Report) RecoveryReport {
	action, err := rep.Action.MarshalText()
	if err != nil {
		action = []byte(rep.Action.String())
	}
	r := RecoveryReport{
		Action:    string(action),
		Removed:   slices.Clone(rep.Removed),
		KeptAside: slices.Clone(rep.MovedAside),
		Notes:     slices.Clone(rep.Notes),
		text:      rep.String(),
	}
	switch rep.Action {
	case checkpoint.ActionRollBack, checkpoint.ActionRollForward, checkpoint.ActionFinish:
		r.Generation = rep.Gen
	}
	return r
}
