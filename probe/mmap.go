package probe

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// errMapClosed is returned for accesses to a closed SharedMap.
var errMapClosed = errors.New("closed")

// SharedMap is a read-write MAP_SHARED mapping of a file. ejectsafe never
// maps a database file: its wal-index lives in heap memory. SharedMap
// exists so that `ejectsafe doctor` can test what stock SQLite's WAL mode
// needs from a filesystem: that two processes mapping one file (the -shm
// wal-index) see each other's stores. On a filesystem whose mappings are
// not coherent, stock SQLite corrupts databases without an error.
//
// Accesses are 32-bit atomics, as SQLite's own wal-index accesses are. A
// fault on the mapping (SIGBUS: the file was truncated or the drive went
// away) is returned as an error, not a crash. SharedMap is safe for
// concurrent use.
type SharedMap struct {
	mu   sync.Mutex
	b    []byte // nil once closed
	name string
}

// Len returns the mapping's size in bytes.
func (m *SharedMap) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.b)
}

// LoadUint32 atomically reads the 32-bit word at off, which must be a
// multiple of 4 inside the mapping (anything else is a bug of the
// caller, and panics).
func (m *SharedMap) LoadUint32(off int) (v uint32, err error) {
	err = m.access(off, func(p *uint32) { v = atomic.LoadUint32(p) })
	return v, err
}

// StoreUint32 atomically writes v to the 32-bit word at off; see
// LoadUint32 for off.
func (m *SharedMap) StoreUint32(off int, v uint32) error {
	return m.access(off, func(p *uint32) { atomic.StoreUint32(p, v) })
}

// access runs fn on the word at off, turning a memory fault into an
// error.
func (m *SharedMap) access(off int, fn func(*uint32)) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return fmt.Errorf("probe: shared map of %s: %w", m.name, errMapClosed)
	}
	if off < 0 || off%4 != 0 || off+4 > len(m.b) {
		panic(fmt.Sprintf("probe: SharedMap offset %d outside a %d-byte mapping or unaligned", off, len(m.b)))
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("probe: memory fault on shared map of %s at offset %d (the file shrank or its drive is gone): %v", m.name, off, r)
		}
	}()
	fn((*uint32)(unsafe.Pointer(&m.b[off])))
	return nil
}

// Close unmaps the file. It is idempotent.
func (m *SharedMap) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return nil
	}
	err := unmap(m.b)
	m.b = nil
	if err != nil {
		return fmt.Errorf("probe: unmap %s: %w", m.name, err)
	}
	return nil
}
