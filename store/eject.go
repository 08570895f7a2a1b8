package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ejectsafe/ejectsafe/lease"
)

// takeLease starts the control endpoint and writes this Store's lease,
// replacing a stale one: the OS lock, taken first, proves no live holder
// on this host has the database. A control endpoint that cannot start is
// not fatal: the lease then names none, and an eject cannot ask this
// process to release (Stats().LeaseError says why).
func (s *Store) takeLease() error {
	if s.opts.ReadOnly {
		return nil // a lease is a file on the drive
	}
	me, err := lease.Me()
	if err != nil {
		return fmt.Errorf("lease: who am I: %w", err)
	}
	if s.lease.Path == "" {
		s.lease = lease.PlaceFor(s.opts.FS, s.path)
	}
	// The endpoint answers as soon as Listen returns (a status request may
	// come before this function does): what it reads, leaseErr among it,
	// is set under smu.
	ep, lerr := lease.Listen(endpointHandler{s})
	if lerr != nil {
		ep = nil
	}
	s.endpoint = ep
	s.smu.Lock()
	s.leaseErr = lerr
	s.smu.Unlock()
	if err := s.writeLease(me, lease.StateOpen); err != nil {
		if s.endpoint != nil {
			s.endpoint.Close()
		}
		return err
	}
	return nil
}

func (s *Store) writeLease(me lease.Self, state string) error {
	l := lease.Lease{
		Version: lease.Version, DB: s.lease.DB, PID: me.PID, Start: me.Start,
		Host: me.Host, Boot: me.Boot, State: state, Since: time.Now().UTC(),
	}
	if s.endpoint != nil {
		l.Endpoint = s.endpoint.Endpoint()
	}
	return lease.Write(s.opts.FS, s.lease.Path, l)
}

// endpointHandler answers the control endpoint for a Store.
type endpointHandler struct{ s *Store }

func (h endpointHandler) Status() lease.Status {
	st := h.s.Stats()
	state := lease.StateOpen
	if h.s.isClosed() {
		state = "closed"
	}
	h.s.smu.Lock()
	vol := h.s.vol
	h.s.smu.Unlock()
	return lease.Status{
		DB: h.s.path, State: state, DirtyBytes: st.DirtyBytes, WALBytes: st.WALBytes,
		Generation: st.Generation, LastCheckpoint: st.LastCheckpoint,
		VolumeDev: vol.Dev, VolumeMount: vol.Mount, VolumeSerial: vol.Serial,
	}
}

// Eject asks the application (Options.OnEjectRequest), then checkpoints and
// releases the database; the Store's methods return ErrEjected afterwards.
func (h endpointHandler) Eject(ctx context.Context) error {
	s := h.s
	if f := s.opts.OnEjectRequest; f != nil {
		if err := f(ctx); err != nil {
			return &lease.RefusedError{Reason: err.Error()}
		}
	}
	if me, err := lease.Me(); err == nil {
		s.writeLease(me, lease.StateCheckpointing) // best effort: it is informative
	}
	if err := s.shutdown(ctx, true); err != nil {
		if me, merr := lease.Me(); merr == nil && !s.isClosed() {
			s.writeLease(me, lease.StateOpen)
		}
		return err
	}
	return nil
}
