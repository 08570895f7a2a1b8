//go:build linux

package yank

import (
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

var (
	flagSeed    = flag.Int64("yank.seed", 0, "seed of the pull moments; 0 picks one from the clock (every run prints it)")
	flagFull    = flag.Bool("yank.full", false, "hundreds of pulls, databases from 4 MiB to 256 MiB")
	flagPulls   = flag.Int("yank.pulls", 0, "pulls per filesystem, target and database size (0: the plan's count); to replay round R, pass R+1")
	flagKinds   = flag.String("yank.kinds", "", "comma-separated filesystems to run (exfat,vfat); empty: all")
	flagTargets = flag.String("yank.targets", "", "comma-separated targets (store,store-inplace,store-copy,wal-normal,delete-full); empty: all but store-copy (which -yank.full adds)")
)

// seed is the run's seed: -yank.seed or the clock. Each subtest derives
// its own generator from it and its name (subSeed), so a subtest replays
// alone with the same decisions.
var seed = sync.OnceValue(func() int64 {
	if *flagSeed != 0 {
		return *flagSeed
	}
	return time.Now().UnixNano()
})

// subSeed mixes the run's seed with a subtest's name.
func subSeed(name string) int64 {
	h := fnv.New64a()
	io.WriteString(h, name)
	return seed() ^ int64(h.Sum64()&(1<<62-1))
}

func TestMain(m *testing.M) {
	if target := os.Getenv(childEnv); target != "" {
		os.Exit(runChild(target))
	}
	if path := os.Getenv(replugChildEnv); path != "" {
		os.Exit(replugChild(path))
	}
	if path := os.Getenv(hostLogChildEnv); path != "" {
		os.Exit(hostLogChild(path))
	}
	flag.Parse()
	start := time.Now()
	code := m.Run()
	printSummary(os.Stdout, time.Since(start))
	os.Exit(code)
}

// kinds is realfs.Kinds filtered by -yank.kinds.
func kinds() []realfs.Kind {
	var out []realfs.Kind
	for _, k := range realfs.Kinds {
		if *flagKinds == "" || slices.Contains(strings.Split(*flagKinds, ","), string(k)) {
			out = append(out, k)
		}
	}
	return out
}

// tally counts the outcomes of the pulls of one filesystem and target.
type tally struct {
	pulls    int
	inside   int // pulls that fell inside a checkpoint (or a commit, for delete-full)
	failures int // store: rounds with any failed check
	// Plain SQLite outcomes; every pull is exactly one of them.
	ok, malformed, lost int
	errored             int // SQLite failed before the pull
	fsckNamed           int // plain SQLite: pulls after which fsck named its files
	hidden              int // store: .fuse_hidden files left (see hiddenNote)
	logs                int // store: pulls that left a -wal on the drive (inside an in-place checkpoint)
	checkpoints         int // store: checkpoints completed
	inPlace             int // store: of those, written in place
	elapsed             time.Duration
}

var results struct {
	sync.Mutex
	m map[string]*tally // "kind/target"
}

func record(kind realfs.Kind, tgt target, f func(*tally)) {
	results.Lock()
	defer results.Unlock()
	if results.m == nil {
		results.m = make(map[string]*tally)
	}
	k := string(kind) + "/" + string(tgt)
	if results.m[k] == nil {
		results.m[k] = new(tally)
	}
	f(results.m[k])
}

// printSummary prints the lines the project publishes:
//
//	yank: N pulls on exfat, M on vfat, F failures
//	yank: store ...: per store target and filesystem
//	yank: plain SQLite: ...
//	yank: seed S, ...
func printSummary(w io.Writer, total time.Duration) {
	results.Lock()
	defer results.Unlock()
	if len(results.m) == 0 {
		return
	}
	get := func(kind realfs.Kind, tgt target) tally {
		if t := results.m[string(kind)+"/"+string(tgt)]; t != nil {
			return *t
		}
		return tally{}
	}
	var ex, vf tally // every store target's
	var arms []string
	for _, tgt := range targets {
		if !tgt.isStore() {
			continue
		}
		for _, kind := range realfs.Kinds {
			t := get(kind, tgt)
			if t.pulls == 0 {
				continue
			}
			sum := &ex
			if kind == realfs.VFAT {
				sum = &vf
			}
			sum.pulls += t.pulls
			sum.failures += t.failures
			sum.inside += t.inside
			sum.hidden += t.hidden
			sum.elapsed += t.elapsed
			arms = append(arms, fmt.Sprintf("%s %s (%v): %d pulls, %d failures, %d inside a checkpoint, %d left its redo log on the drive; %d of %d checkpoints in place",
				tgt, kind, tgt.mode(), t.pulls, t.failures, t.inside, t.logs, t.inPlace, t.checkpoints))
		}
	}
	fmt.Fprintf(w, "yank: %d pulls on exfat, %d on vfat, %d failures\n", ex.pulls, vf.pulls, ex.failures+vf.failures)
	if len(arms) > 0 {
		fmt.Fprintf(w, "yank: %s\n", strings.Join(arms, "; "))
	}
	var plain []string
	for _, kind := range realfs.Kinds {
		for _, tgt := range []target{targetWAL, targetDelete} {
			t := get(kind, tgt)
			if t.pulls == 0 {
				continue
			}
			plain = append(plain, fmt.Sprintf("%s %s: %d pulls, %d malformed, %d lost committed data, %d ok, %d failed before the pull (fsck named its files %d times)",
				kind, tgt, t.pulls, t.malformed, t.lost, t.ok, t.errored, t.fsckNamed))
		}
	}
	if len(plain) > 0 {
		fmt.Fprintf(w, "yank: plain SQLite: %s\n", strings.Join(plain, "; "))
	}
	fmt.Fprintf(w, "yank: seed %d; store pulls inside a checkpoint: exfat %d, vfat %d; .fuse_hidden files %s: exfat %d, vfat %d; store %v + %v, plain %v; %v in all\n",
		seed(), ex.inside, vf.inside, hiddenNote, ex.hidden, vf.hidden, ex.elapsed.Round(time.Second), vf.elapsed.Round(time.Second), plainElapsed(results.m).Round(time.Second), total.Round(time.Second))
}

func plainElapsed(m map[string]*tally) time.Duration {
	var d time.Duration
	for k, t := range m {
		if _, tgt, _ := strings.Cut(k, "/"); !target(tgt).isStore() {
			d += t.elapsed
		}
	}
	return d
}
