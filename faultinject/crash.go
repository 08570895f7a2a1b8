package faultinject

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
)

// Policy says what a power cut does to what was not yet synced. Synced
// data and synced directory entries survive every policy (except that a
// garbage sector also destroys synced bytes that share it, as a torn
// sector write does on real media).
//
// Directory entries: DropAll loses every unsynced creation, rename and
// removal, KeepAll keeps them all, and the random policies keep each
// unsynced change independently with probability 1/2, applied in the order
// they happened. A rename is one change (see Options.NonAtomicRename).
type Policy int

const (
	// DropAll loses every unsynced write, truncate and entry change: the
	// drive holds exactly what was synced.
	DropAll Policy = iota
	// KeepAll keeps every unsynced change, as if the cut came after a
	// final sync. Writes lost to a failed Sync stay lost.
	KeepAll
	// KeepRandomSubset keeps each unsynced write and truncate of each
	// file independently with probability 1/2, applied in order: later
	// writes may land without earlier ones (the disk reorders).
	KeepRandomSubset
	// CutTail treats each file's unsynced writes and truncates as one
	// stream in order and cuts it at a random byte: everything before
	// the cut lands, the write it falls in lands in part, nothing after.
	CutTail
	// Garbage512 picks some unsynced writes of each file (at least one
	// per file that has any) and fills every 512-byte sector they touch
	// with random bytes, at least one byte differing from what the write
	// meant; each other unsynced write or truncate lands with
	// probability 1/2.
	Garbage512
	// Garbage4096 is Garbage512 with 4096-byte sectors.
	Garbage4096
)

var policyNames = [...]string{"DropAll", "KeepAll", "KeepRandomSubset", "CutTail", "Garbage512", "Garbage4096"}

func (p Policy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Random reports whether the policy uses its seed: only random policies
// need more than one seed in a matrix.
func (p Policy) Random() bool { return p >= KeepRandomSubset }

// AllPolicies returns every policy, in declaration order.
func AllPolicies() []Policy {
	return []Policy{DropAll, KeepAll, KeepRandomSubset, CutTail, Garbage512, Garbage4096}
}

// armedCrash is a pending CrashAt.
type armedCrash struct {
	at     int
	policy Policy
	seed   int64
}

// CrashImage returns a new FS holding what a power cut at this instant
// would leave under policy, drawing every random choice from seed: the
// same history and seed give the same image, byte for byte. The image has
// no open files, no locks, no rules, an empty trace, and everything in it
// is durable. This FS keeps running; after a cut it returns a copy of
// what the drive holds, whatever the policy.
func (f *FS) CrashImage(policy Policy, seed int64) *FS {
	v := f.view()
	defer v.mu.Unlock()
	if v != f {
		return v.imageLocked(DropAll, 0) // a frozen FS holds nothing unsynced
	}
	return f.imageLocked(policy, seed)
}

// CrashAt arms a power cut at operation index at (or at the next operation
// if at has passed): before that operation runs, the FS takes the crash
// image under policy and seed, then behaves as a pulled device. Get the
// image with CrashedImage. A later CrashAt replaces an armed one.
func (f *FS) CrashAt(at int, policy Policy, seed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crash = &armedCrash{at: at, policy: policy, seed: seed}
}

// PullAt arms a surprise removal at operation index at: that operation and
// every later one fail (ENODEV for path operations, EIO on handles) and
// what was unsynced is lost, as with CrashAt(at, DropAll, 0).
func (f *FS) PullAt(at int) { f.CrashAt(at, DropAll, 0) }

// Pull removes the device now: every later operation fails (ENODEV for
// path operations, EIO on handles), handles are dead, and what was
// unsynced is lost: the FS holds what CrashImage(DropAll, 0) gives.
func (f *FS) Pull() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dead {
		f.crash = nil
		f.cutLocked(f.imageLocked(DropAll, 0))
	}
}

// Dead reports whether the device is gone (Pull, PullAt or CrashAt fired).
func (f *FS) Dead() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead
}

// CrashedImage returns a copy of what the drive held when the cut came,
// or nil if it has not come.
func (f *FS) CrashedImage() *FS {
	f.mu.Lock()
	fr := f.frozen
	f.mu.Unlock()
	if fr == nil {
		return nil
	}
	return fr.CrashImage(DropAll, 0)
}

// cutLocked makes the device gone, holding img.
func (f *FS) cutLocked(img *FS) {
	f.dead = true
	f.frozen = img
}

// imageLocked builds the crash image. Random choices are drawn in a fixed
// order: namespace changes in log order, then files by inode number, each
// file's unsynced ops in order.
func (f *FS) imageLocked(policy Policy, seed int64) *FS {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xbb67ae8584caa73b))
	ns := f.base.clone()
	for _, op := range f.nslog {
		keep := len(op.unsynced) == 0
		switch {
		case keep:
		case policy == KeepAll:
			keep = true
		case policy.Random():
			keep = rng.IntN(2) == 0
		}
		if keep {
			op.apply(ns)
		}
	}

	var inos []*inode
	seen := map[*inode]bool{}
	for _, m := range ns {
		for _, ino := range m {
			if !seen[ino] {
				seen[ino] = true
				inos = append(inos, ino)
			}
		}
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i].id < inos[j].id })

	img := New(f.opts)
	img.nextIno = f.nextIno
	fresh := make(map[*inode]*inode, len(inos))
	for _, ino := range inos {
		content := imageData(ino, policy, rng)
		fresh[ino] = &inode{id: ino.id, perm: ino.perm, data: content,
			durable: append([]byte(nil), content...)}
	}
	for dp, live := range f.dirs {
		d := newDir()
		for name := range live.subdirs {
			d.subdirs[name] = true
		}
		base := map[string]*inode{}
		for name, ino := range ns[dp] {
			d.entries[name] = fresh[ino]
			base[name] = fresh[ino]
		}
		img.dirs[dp] = d
		img.base[dp] = base
	}
	return img
}

// imageData returns what a file holds after the cut under policy.
func imageData(n *inode, policy Policy, rng *rand.Rand) []byte {
	buf := append([]byte(nil), n.durable...)
	switch policy {
	case KeepAll:
		for _, op := range n.pending {
			buf = op.apply(buf)
		}
	case KeepRandomSubset:
		for _, op := range n.pending {
			if rng.IntN(2) == 0 {
				buf = op.apply(buf)
			}
		}
	case CutTail:
		buf = cutTail(buf, n.pending, rng)
	case Garbage512:
		buf = garbage(buf, n.pending, 512, rng)
	case Garbage4096:
		buf = garbage(buf, n.pending, 4096, rng)
	}
	return buf
}

func cutTail(buf []byte, ops []dataOp, rng *rand.Rand) []byte {
	if len(ops) == 0 {
		return buf
	}
	var total int64
	for _, op := range ops {
		total += op.weight()
	}
	cut := rng.Int64N(total + 1)
	for _, op := range ops {
		if w := op.weight(); cut >= w {
			buf = op.apply(buf)
			cut -= w
			continue
		}
		if !op.truncate && cut > 0 {
			buf = writeAt(buf, op.data[:cut], op.off)
		}
		break
	}
	return buf
}

func garbage(buf []byte, ops []dataOp, sector int64, rng *rand.Rand) []byte {
	if len(ops) == 0 {
		return buf
	}
	hit := make([]bool, len(ops))
	var writes []int
	anyHit := false
	for i, op := range ops {
		if !op.truncate && len(op.data) > 0 {
			writes = append(writes, i)
			hit[i] = rng.IntN(2) == 0
			anyHit = anyHit || hit[i]
		}
	}
	if len(writes) > 0 && !anyHit {
		hit[writes[rng.IntN(len(writes))]] = true
	}
	for i, op := range ops {
		switch {
		case hit[i]:
			buf = garbageWrite(buf, op, sector, rng)
		case rng.IntN(2) == 0:
			buf = op.apply(buf)
		}
	}
	return buf
}

// garbageWrite lands op with every sector it touches filled with random
// bytes, clipped to the file's size after the write; at least one byte
// differs from what the write meant to leave. It works in place on buf,
// which the caller owns.
func garbageWrite(buf []byte, op dataOp, sector int64, rng *rand.Rand) []byte {
	buf = op.apply(buf)
	end := op.off + int64(len(op.data))
	lo := op.off / sector * sector
	hi := min((end+sector-1)/sector*sector, int64(len(buf)))
	want := append([]byte(nil), buf[lo:hi]...)
	for i := lo; i < hi; i += 8 {
		v := rng.Uint64()
		for k := i; k < min(i+8, hi); k++ {
			buf[k] = byte(v)
			v >>= 8
		}
	}
	if bytes.Equal(buf[lo:hi], want) {
		buf[op.off] ^= 0xff
	}
	return buf
}
