package store

import (
	"sync"
	"time"
)

// The answer to an eject request comes before the application hears of
// the eject. The endpoint answers after Eject returns; an application
// that exits as soon as its calls fail with ErrEjected (or its
// OnStateChange sees Ejected) would otherwise end the process, and with
// it the connection, before the answer is written, and the person
// ejecting would read "no answer" from a holder that did release. So the
// Store's ErrEjected and its Ejected event wait for the gate below, which
// the endpoint opens once the answer is delivered (lease.EjectAnswerer):
// written, the connection closed, and on Windows read by the asker.

// answerWait bounds the wait for an answer that hangs (an asker that
// neither reads nor goes): the eject is not kept secret longer than this.
const answerWait = 10 * time.Second

// answerGate is open once the eject's answer is delivered.
type answerGate struct {
	once sync.Once
	ch   chan struct{}
}

func newAnswerGate() *answerGate { return &answerGate{ch: make(chan struct{})} }

func (g *answerGate) open() { g.once.Do(func() { close(g.ch) }) }

// wait returns once the gate is open, or after answerWait, opening it
// then, so that later calls do not wait again.
func (g *answerGate) wait() {
	if g == nil {
		return
	}
	t := time.NewTimer(answerWait)
	defer t.Stop()
	select {
	case <-g.ch:
	case <-t.C:
		g.open()
	}
}

// EjectAnswered opens the gate after the answer to an eject that
// released the Store; a refused or failed eject leaves it shut.
func (h endpointHandler) EjectAnswered() {
	if h.s.conn.ejected.Load() {
		h.s.answer.open()
	}
}
