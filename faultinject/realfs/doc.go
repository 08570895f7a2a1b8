// Package realfs gives tests a real removable-media filesystem they can
// yank: exFAT through exfat-fuse or FAT through fusefat, on a loop device
// backed by a sparse image file. It is the real-filesystem counterpart of
// faultinject's simulated power cuts (DESIGN.md, "Testing doctrine").
//
//	realfs.Skip(t, realfs.ExFAT)              // loud skip; a failure when CI is set
//	v, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT})
//	... use v.Mount ...                       // through device.OS, or through
//	w := faultinject.Wrap(device.OS, seed)    // w to inject errors: w.Inject(faultinject.Fail(syscall.EIO))
//	v.Pull()                                  // surprise removal
//	rep, _ := v.Fsck()                        // read-only check of what is left
//	v.Remount()                               // plug it back in
//
// Linux only, as root, with /dev/fuse and loop devices; Debian packages
// exfat-fuse, exfatprogs, fusefat, dosfstools. Everything is undone by
// t.Cleanup, test failed or not; each external command is bounded by a
// 20 s timeout, each wait by 10 s.
//
// # Commands
//
// Per volume: truncate the image (sparse), losetup --find --show IMAGE,
// then mkfs.exfat DEV or mkfs.vfat [-F 32] DEV (FAT32 from 64 MiB), then
// mount.exfat-fuse -o rw|ro DEV MNT or fusefat -s -o rw+|ro DEV MNT
// (fusefat opens read-only without rw+; -s because it shares one
// descriptor between threads with lseek+read). The mount is ready when
// /proc/self/mountinfo shows it with fstype fuseblk (exfat-fuse) or
// fuse.fusefat. Unmount is umount MNT, then waiting for the daemon to
// exit, then losetup -d DEV. Fsck is fsck.exfat -n IMAGE or fsck.vfat -n
// IMAGE. The daemon's pid is found through /proc: the process holding a
// /dev/fuse descriptor whose fdinfo names the mount's connection.
//
// # Where written data is, and what Pull loses
//
// A write on the mount passes five places; Pull keeps only the last:
//
//  1. The kernel's FUSE page cache. Both daemons use libfuse 2, which has
//     no writeback cache: write(2) returns only after the daemon handled
//     the write, so nothing is held here (shared mmap writes excepted).
//  2. The daemon's memory. exfat-fuse keeps file sizes and directory
//     entries there until close, fsync or unmount; fusefat writes through.
//     SIGKILL loses it.
//  3. The loop device's page cache. Both daemons open the device without
//     O_DIRECT or O_SYNC (fdinfo flags 0100002), so their pwrites land in
//     host memory. On a real stick that memory is lost at a yank, so Pull
//     loses it too: it holds the device open (the daemon's exit must not
//     be its last close, which writes the cache back), kills the daemon,
//     copies the image file aside, detaches, and puts the copy back.
//     Options.PullKeepsDeviceCache keeps it instead.
//  4. The loop driver. It writes into the image file's page cache, which
//     is what reading the image sees: what reached the loop driver is in
//     the image as read by Pull, Fsck and Remount. losetup --direct-io=on
//     would only matter for a host crash, so it is not used.
//  5. The image file on the host disk: the medium.
//
// The kernel also writes the loop device's cache back by itself after
// vm.dirty_expire_centisecs (30 s by default): data older than that is on
// the medium fsync or not, as on a real stick.
//
// # Findings (Debian 12: exfat-fuse 1.3.0, fusefat 0.1a, kernel 6.x)
//
// probe_test.go measures these; run go test -v -run Probe to see them.
//
// exFAT: fsync and directory fsync reach the medium. exfat-fuse answers
// FSYNC and FSYNCDIR by flushing its nodes and calling fsync(2) on the
// device. Written without fsync, a file is on the loop device but not on
// the medium at Pull and is lost (the file does not exist afterwards);
// with PullKeepsDeviceCache a closed file survives, a file still open
// comes back with size 0 (its size was in the daemon's memory).
//
// FAT: fsync does not reach the medium. fusefat receives FSYNC but never
// calls fsync(2) on the device, so under the default model everything
// written since the mount, fsynced or not, is lost at a Pull made within
// ~30 s (even the dirty bit). With PullKeepsDeviceCache everything fusefat
// wrote survives, fsynced or not, and fsck.vfat reports the dirty bit. So
// FAT through fusefat cannot show that an fsync was needed.
//
// fusefat also has two bugs that code under test will meet: a full volume
// fails writes with EPERM, not ENOSPC (FullErrno), and truncating a file
// that has clusters to zero (O_TRUNC, ftruncate 0) frees the clusters but
// leaves the directory entry's size and first cluster, so the file keeps
// its old size over free clusters and fsck.vfat reports it. Fill never
// truncates to zero for that reason. Truncating to a non-zero size works.
// fusefat's statfs reports zero sizes.
//
// After Pull the dead mount stays on Mount until Remount, Unmount or
// Cleanup: writes and path lookups under Mount fail with ENOTCONN, while
// reads of an open file may still be served from the kernel's page cache.
package realfs
