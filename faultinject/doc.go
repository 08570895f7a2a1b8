// Package faultinject is a device.FS that simulates power loss, surprise
// removal and drive errors, a decorator (Faulty) that injects the same
// errors into any device.FS, real mounts included, plus the checker and
// crash-matrix driver that the project's tests use.
//
// # Model
//
// An FS is strict: nothing is durable until it is synced. Each file is its
// durable content plus the ordered writes and truncates since its last
// File.Sync; each directory is its durable entries plus the ordered
// creations, renames and removals since its last FS.SyncDir (a rename
// touching two directories needs both synced). Reads see everything. An
// open file refers to the file, not the name: renamed over or removed, it
// stays readable and writable, as on POSIX. Directories are made by
// MkdirAll in test setup and are durable from then on.
//
// # Power cuts
//
// CrashImage(policy, seed) returns, as a new FS, what a power cut at that
// instant would leave: DropAll (only what was synced), KeepAll, and the
// random KeepRandomSubset, CutTail, Garbage512 and Garbage4096 (see
// Policy). All random choices come from the seed in a fixed order, so the
// same history and seed give the same image byte for byte.
//
// CrashAt(i, policy, seed) cuts the power at operation i: the image is
// taken just before it runs (CrashedImage), then the device is gone.
// Pull and PullAt are the same with DropAll: surprise removal. A gone
// device fails path operations with ENODEV and handle operations (Close
// included) with EIO.
//
// # Errors
//
// Rules (Inject, Fail) fail chosen operations with a chosen error number,
// by kind, path glob, operation index and seeded probability, once or
// persistently. Errors look like the OS's: *os.PathError or *os.LinkError
// wrapping a syscall.Errno.
//
// Wrap(inner, seed) applies the same rules to any device.FS: device.OS on
// a faultinject/realfs mount, say. The Faulty it returns forwards what no
// rule fails and unwraps to inner, so the store treats a Faulty over
// device.OS as the OS's filesystem (device.IsNative). It has no power-cut
// model: on a real mount, realfs pulls the drive.
//
// # Checking and matrices
//
// Every operation is traced (Trace). Check replays a trace against the
// project's ordering rules: the database never written in place, renamed
// over only by synced copies, journal claims made only once true, no fsync
// retried after a failure.
//
// RunMatrix runs a workload once to count its operations, then crashes it
// at every operation under every policy (and several seeds for the random
// ones), hands each image to Recover and an Oracle, and, in compound mode,
// crashes the recovery at each of its operations too:
//
//	sum, err := faultinject.RunMatrix(faultinject.MatrixConfig{
//		Setup:    setup,    // func() (*faultinject.FS, error)
//		Workload: workload, // func(*faultinject.FS) error
//		Recover:  recover,  // optional
//		Oracle:   oracle,   // func(img *faultinject.FS) error
//		Seeds:    4,
//		Workers:  2,
//	})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Log(sum) // crash matrix: 9 points x 6 policies = 78 cases, 0 failures
//	if err := sum.Err(); err != nil {
//		t.Error(err)
//	}
package faultinject
