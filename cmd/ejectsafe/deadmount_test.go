package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// TestDeadMount: a drive pulled while an application holds a database on
// it (the FUSE daemon killed: the mount answers ENOTCONN) gets one clear
// message from every command, what happened and what to do, and status
// and check still list the holder, asked through its control endpoint on
// this host, with its uncheckpointed bytes. exFAT and FAT.
func TestDeadMount(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(vol.Mount, "app.db")
			holder := startHolder(t, db, "") // 300 rows, never checkpointed
			pid := strconv.Itoa(holder.Process.Pid)
			if err := vol.Pull(); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"status", vol.Mount}, {"status", db}, {"check", vol.Mount},
				{"eject", vol.Mount}, {"verify", db}, {"recover", db}, {"doctor", vol.Mount},
			} {
				code, out, errs := runCmd(t, args...)
				if code != 2 || !strings.HasPrefix(errs, "ejectsafe "+args[0]+": ") || strings.Contains(errs, "\nejectsafe ") || !strings.Contains(errs, "is gone") ||
					!strings.Contains(errs, "ENOTCONN") || !strings.Contains(errs, "umount -l "+vol.Mount) {
					t.Errorf("%v on a pulled drive = %d; want 2 and one message saying the drive is gone (ENOTCONN) and to unmount %s:\nstdout:\n%s\nstderr:\n%s",
						args, code, vol.Mount, out, errs)
				}
				if args[0] == "status" || args[0] == "check" {
					if !strings.Contains(out, "held:") || !strings.Contains(out, "pid "+pid) || !strings.Contains(out, "not checkpointed") {
						t.Errorf("%v does not list the live holder, pid %s, with its uncheckpointed bytes:\n%s", args, pid, out)
					}
				}
			}
			code, out, errs := runCmd(t, "status", "--json", vol.Mount)
			var got struct {
				DriveGone    bool          `json:"drive_gone"`
				Errno        string        `json:"errno"`
				MountPoint   string        `json:"mount_point"`
				LocalHolders []localHolder `json:"local_holders"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil || code != 2 {
				t.Fatalf("status --json = %d, %v:\n%s%s", code, err, out, errs)
			}
			if !got.DriveGone || got.Errno != "ENOTCONN" || got.MountPoint != vol.Mount || len(got.LocalHolders) != 1 ||
				got.LocalHolders[0].PID != holder.Process.Pid || got.LocalHolders[0].Status.DB != db ||
				got.LocalHolders[0].Status.DirtyBytes <= 0 {
				t.Fatalf("status --json on a pulled drive: %+v; want the drive gone (ENOTCONN, %s) and pid %s holding %s with bytes not checkpointed", got, vol.Mount, pid, db)
			}
		})
	}
}
