package faultinject

import (
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"sync"
	"syscall"
)

// OpKind names a kind of filesystem operation. Kinds are bits, so a Rule
// can match several at once (OpSync|OpSyncDir). Every method of device.FS,
// device.File and the lock Closer is a kind; File.Name is not an operation.
type OpKind uint32

// The operation kinds, one per method.
const (
	OpOpen      OpKind = 1 << iota // FS.Open
	OpCreate                       // FS.Create
	OpReadAt                       // File.ReadAt
	OpWriteAt                      // File.WriteAt
	OpTruncate                     // File.Truncate
	OpSize                         // File.Size
	OpSync                         // File.Sync
	OpClose                        // File.Close
	OpRename                       // FS.Rename
	OpRemove                       // FS.Remove
	OpStat                         // FS.Stat
	OpList                         // FS.List
	OpSyncDir                      // FS.SyncDir
	OpLock                         // FS.Lock
	OpUnlock                       // Close of the Closer that FS.Lock returned
	OpFreeSpace                    // FS.FreeSpace

	// OpAny matches every kind.
	OpAny OpKind = 1<<iota - 1
)

var opNames = [...]string{
	"Open", "Create", "ReadAt", "WriteAt", "Truncate", "Size", "Sync", "Close",
	"Rename", "Remove", "Stat", "List", "SyncDir", "Lock", "Unlock", "FreeSpace",
}

// String returns the method name ("Sync"), or names joined by "|".
func (k OpKind) String() string {
	if k == OpAny {
		return "Any"
	}
	var names []string
	for i, n := range opNames {
		if k&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("OpKind(%#x)", uint32(k))
	}
	return strings.Join(names, "|")
}

// handleOp reports whether the kind acts on an open handle rather than a
// path. On a pulled device those fail with EIO, path operations with
// ENODEV.
func (k OpKind) handleOp() bool {
	return k&(OpReadAt|OpWriteAt|OpTruncate|OpSize|OpSync|OpClose|OpUnlock) != 0
}

// AnyIndex in Rule.Index matches every operation index.
const AnyIndex = -1

// Rule injects an error into the operations it matches. All conditions must
// hold for a rule to match; among the rules of an FS the first one that
// matches and fires wins, and the operation then fails with Err without
// taking effect (see the FS doc for Sync and Close).
//
// Build rules with Fail, which sets Index to AnyIndex: the zero Rule has
// Index 0 and would match only the very first operation.
type Rule struct {
	// Kinds is the set of operation kinds to match; 0 matches every kind.
	Kinds OpKind
	// Glob is a path.Match pattern; "" matches every path. It is matched
	// against the full cleaned path and, when it holds no '/', against
	// the base name too ("*.db"). A Rename matches on either name;
	// handle operations match on the name the file was opened with.
	Glob string
	// Index is the global operation index to match (see FS.OpCount), or
	// AnyIndex. THE ZERO VALUE MATCHES ONLY OPERATION 0.
	Index int
	// Prob is the chance that a matching operation fails, drawn from the
	// FS's seeded source (Options.Seed); 0 and 1 both mean always.
	Prob float64
	// Err is the error number the operation fails with: EIO, ENOSPC,
	// EROFS, ENODEV, EACCES or any other. Required.
	Err syscall.Errno
	// Persistent keeps the rule armed after it fires. By default a rule
	// fires once and then disarms.
	Persistent bool
	// Stall, when not nil, makes a matching operation wait until the
	// channel is closed (a hung drive; operations the rule does not
	// match go on meanwhile); then it fails with Err, or, with Err 0,
	// goes on. Build it with Hang.
	Stall <-chan struct{}
}

// Fail starts a rule that fails every operation, once, with errno.
// Narrow it with On, Matching, At and WithProb; make it stay armed with
// Always.
func Fail(errno syscall.Errno) Rule { return Rule{Index: AnyIndex, Err: errno} }

// Hang starts a rule that makes every operation, once, wait until release
// is closed and then go on: a drive that stops answering. Narrow it as a
// Fail rule; with WithErr it fails after the wait.
func Hang(release <-chan struct{}) Rule { return Rule{Index: AnyIndex, Stall: release} }

// WithErr makes the rule fail with errno.
func (r Rule) WithErr(errno syscall.Errno) Rule { r.Err = errno; return r }

// On restricts the rule to the given kinds.
func (r Rule) On(kinds OpKind) Rule { r.Kinds = kinds; return r }

// Matching restricts the rule to paths matching glob (see Rule.Glob).
func (r Rule) Matching(glob string) Rule { r.Glob = glob; return r }

// At restricts the rule to the operation with global index i.
func (r Rule) At(i int) Rule { r.Index = i; return r }

// WithProb makes the rule fire with probability p on each match.
func (r Rule) WithProb(p float64) Rule { r.Prob = p; return r }

// Always keeps the rule armed after it fires (Persistent).
func (r Rule) Always() Rule { r.Persistent = true; return r }

// String describes the rule.
func (r Rule) String() string {
	var b strings.Builder
	switch {
	case r.Stall != nil && r.Err == 0:
		b.WriteString("hang")
	case r.Stall != nil:
		fmt.Fprintf(&b, "hang, then fail %s", errnoName(r.Err))
	default:
		fmt.Fprintf(&b, "fail %s", errnoName(r.Err))
	}
	if r.Kinds != 0 && r.Kinds != OpAny {
		fmt.Fprintf(&b, " on %s", r.Kinds)
	}
	if r.Glob != "" {
		fmt.Fprintf(&b, " matching %q", r.Glob)
	}
	if r.Index != AnyIndex {
		fmt.Fprintf(&b, " at op %d", r.Index)
	}
	if r.Prob > 0 && r.Prob < 1 {
		fmt.Fprintf(&b, " with p=%g", r.Prob)
	}
	if r.Persistent {
		b.WriteString(" always")
	} else {
		b.WriteString(" once")
	}
	return b.String()
}

func (r Rule) validate() error {
	switch {
	case r.Err == 0 && r.Stall == nil:
		return fmt.Errorf("%w: %s: no error number", ErrBadRule, r)
	case r.Prob < 0 || r.Prob > 1:
		return fmt.Errorf("%w: %s: probability outside [0, 1]", ErrBadRule, r)
	case r.Index < AnyIndex:
		return fmt.Errorf("%w: %s: negative index", ErrBadRule, r)
	}
	if _, err := path.Match(r.Glob, ""); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadRule, r, err)
	}
	return nil
}

// ruleState is a rule and whether it is still armed.
type ruleState struct {
	Rule
	armed bool
}

// matches reports whether the rule applies to ev, before probability.
func (r *ruleState) matches(ev *Event) bool {
	if !r.armed {
		return false
	}
	if r.Kinds != 0 && r.Kinds&ev.Kind == 0 {
		return false
	}
	if r.Index != AnyIndex && r.Index != ev.Index {
		return false
	}
	if r.Glob == "" {
		return true
	}
	return globMatch(r.Glob, ev.Path) || (ev.NewPath != "" && globMatch(r.Glob, ev.NewPath))
}

func globMatch(glob, p string) bool {
	if ok, _ := path.Match(glob, p); ok {
		return true
	}
	if strings.Contains(glob, "/") {
		return false
	}
	ok, _ := path.Match(glob, path.Base(p))
	return ok
}

// ruleSet is the rules of an FS or a Faulty, and the seeded source their
// probabilities draw from. Its owner's mutex guards it.
type ruleSet struct {
	rules []*ruleState
	rng   *rand.Rand
}

func newRuleSet(seed int64) ruleSet {
	return ruleSet{rng: rand.New(rand.NewPCG(uint64(seed), 0x6a09e667f3bcc908))}
}

// validateRules fails with ErrBadRule if any rule lacks an error number,
// has a probability outside [0, 1] or a malformed glob.
func validateRules(rules []Rule) error {
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}

// add arms rules after the ones already armed; they are valid.
func (rs *ruleSet) add(rules []Rule) {
	for _, r := range rules {
		rs.rules = append(rs.rules, &ruleState{Rule: r, armed: true})
	}
}

// fire returns the error number of the first rule that matches ev and
// fires, or 0. Probabilities are drawn only for rules that match, in rule
// order, so a deterministic workload sees a deterministic pattern. mu is
// the owner's mutex, held on entry: a stalling rule releases it while the
// operation waits, so that others may go on meanwhile.
func (rs *ruleSet) fire(ev *Event, mu *sync.Mutex) syscall.Errno {
	for _, r := range rs.rules {
		if !r.matches(ev) {
			continue
		}
		if r.Prob > 0 && r.Prob < 1 && rs.rng.Float64() >= r.Prob {
			continue
		}
		if !r.Persistent {
			r.armed = false
		}
		if r.Stall != nil {
			// The drive hangs for this operation; it has done nothing
			// yet.
			mu.Unlock()
			<-r.Stall
			mu.Lock()
		}
		return r.Err
	}
	return 0
}

// Inject adds rules after the ones already armed. It fails with ErrBadRule,
// adding none, if any rule lacks an error number, has a probability
// outside [0, 1] or a malformed glob.
func (f *FS) Inject(rules ...Rule) error {
	if err := validateRules(rules); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rs.add(rules)
	return nil
}

// ClearRules disarms every rule.
func (f *FS) ClearRules() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rs.rules = nil
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EIO:
		return "EIO"
	case syscall.ENOSPC:
		return "ENOSPC"
	case syscall.EROFS:
		return "EROFS"
	case syscall.ENODEV:
		return "ENODEV"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EEXIST:
		return "EEXIST"
	case syscall.EBADF:
		return "EBADF"
	case syscall.EAGAIN:
		return "EAGAIN"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.EISDIR:
		return "EISDIR"
	case syscall.ENOTDIR:
		return "ENOTDIR"
	case syscall.EPERM:
		return "EPERM"
	}
	return fmt.Sprintf("errno %d", int(e))
}
