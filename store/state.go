package store

import (
	"fmt"
	"sync"
	"time"
)

// Condition is what a Store knows of its drive, as State reports it.
type Condition int

const (
	// Attached: the drive and the database are the ones the Store last
	// wrote, and the last checkpoint (if any) succeeded.
	Attached Condition = iota
	// CheckpointsFailing: attached, but the last checkpoint failed (a
	// full drive, a read-only drive, I/O errors). Commits go on into
	// memory; State.Err is the last failure.
	CheckpointsFailing
	// DriveLost: the drive holding the database is gone (pulled, or its
	// filesystem died). The Store serves from memory what SQLite can and
	// writes nothing; when the same drive comes back with the same
	// database it reattaches by itself.
	DriveLost
	// DriveChanged: something is at the database's path, but it is not the
	// drive or the database the Store last wrote (another drive mounted
	// at the same path, or the database changed elsewhere). The Store
	// writes nothing there; State.Err wraps ErrDriveChanged and names what
	// differs. It reattaches if its own drive and database come back.
	DriveChanged
	// Detached: the Store's drive came back, but another process holds
	// the database (State.Err wraps ErrLocked). The Store writes nothing.
	Detached
	// Ejected: the Store released its database for an eject request.
	Ejected
	// Closed: Close or Abandon released the Store.
	Closed
)

var conditionNames = [...]string{"attached", "checkpoints failing", "drive lost", "drive changed", "detached", "ejected", "closed"}

func (c Condition) String() string {
	if c < 0 || int(c) >= len(conditionNames) {
		return fmt.Sprintf("Condition(%d)", int(c))
	}
	return conditionNames[c]
}

// State is a Store's condition at one instant. Store.State returns it
// without waiting for a checkpoint in progress.
type State struct {
	Condition Condition
	Err       error     // why, for every condition but Attached and Closed
	Since     time.Time // when the Store entered Condition
	// Reattaches counts how often the Store reattached to its drive after
	// it was lost, changed or held by another process.
	Reattaches int64
}

// Event is what Options.OnStateChange receives: the State the Store just
// entered, and what happened.
type Event struct {
	State
	// Reattached is true when the Store just became Attached again after
	// DriveLost, DriveChanged or Detached: it took new handles, its OS lock
	// and its lease, recovered what the pull interrupted, and checkpointed.
	Reattached bool
}

// State returns the Store's condition. It never waits for a checkpoint.
func (s *Store) State() State {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.cond
}

// setCond moves the Store to condition c (with err) and tells the
// application if that is a change. A failure that repeats under the same
// condition updates Err without a new event.
func (s *Store) setCond(c Condition, err error) {
	s.smu.Lock()
	old := s.cond
	if old.Condition == c {
		s.cond.Err = err
		s.smu.Unlock()
		return
	}
	if old.Condition == Ejected || old.Condition == Closed {
		s.smu.Unlock()
		return // final
	}
	reattached := c == Attached && (old.Condition == DriveLost || old.Condition == DriveChanged || old.Condition == Detached)
	if reattached {
		s.cond.Reattaches++
	}
	s.cond.Condition, s.cond.Err, s.cond.Since = c, err, time.Now()
	ev := Event{State: s.cond, Reattached: reattached}
	s.smu.Unlock()
	if s.opts.Logger != nil && c != Attached && c != Closed {
		s.opts.Logger.Warn("ejectsafe: "+c.String(), "path", s.path, "err", err)
	} else if reattached {
		s.opts.Logger.Info("ejectsafe: reattached", "path", s.path)
	}
	if c == Ejected {
		// Told once the asker has its answer (answer.go).
		go func() { s.answer.wait(); s.events.post(ev) }()
		return
	}
	s.events.post(ev)
}

// eventQueue delivers events to Options.OnStateChange in order, from a
// goroutine of its own, so that a slow callback, or one that calls the
// Store, never holds up or deadlocks a checkpoint.
type eventQueue struct {
	f    func(Event)
	mu   sync.Mutex
	q    []Event
	busy bool
}

func (e *eventQueue) post(ev Event) {
	if e == nil || e.f == nil {
		return
	}
	e.mu.Lock()
	e.q = append(e.q, ev)
	start := !e.busy
	e.busy = true
	e.mu.Unlock()
	if start {
		go e.drain()
	}
}

func (e *eventQueue) drain() {
	for {
		e.mu.Lock()
		if len(e.q) == 0 {
			e.busy = false
			e.mu.Unlock()
			return
		}
		ev := e.q[0]
		e.q = e.q[1:]
		e.mu.Unlock()
		e.f(ev)
	}
}
