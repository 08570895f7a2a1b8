package main

import (
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/probe"
)

// The JSON every --json prints: one object on stdout, error or not.
// Keys are lower-case snake_case; enumerations are names, never numbers;
// 64-bit checksums are hex strings ("0x" and 16 digits, as jq and
// JavaScript lose precision on larger numbers); lists are [] when empty,
// never null; times are RFC 3339; durations are integer milliseconds or
// nanoseconds, said in the key (_ms, _ns). Every object starts with the
// header. Adding a key keeps the schema number; renaming or removing one,
// or changing a value's meaning, increments it.
// testdata/json_*.golden hold one example of each; README shows them.

// schemaVersion is the "schema" field of every JSON object.
const schemaVersion = 1

// header starts every JSON object.
type header struct {
	Schema   int    `json:"schema"`
	Command  string `json:"command"`
	ExitCode int    `json:"exit_code"`
	// Error is set when the command failed (exit code 2, or 1 when it
	// could not finish): what went wrong, as on stderr.
	Error string `json:"error,omitempty"`
}

func newHeader(cmd string, code int) header {
	return header{Schema: schemaVersion, Command: cmd, ExitCode: code}
}

// errorOut is the whole object for a command that failed before it had
// anything else to say.
func errorOut(cmd string, code int, msg string) header {
	h := newHeader(cmd, code)
	h.Error = msg
	return h
}

// writeJSON prints v, indented, with a final newline.
func writeJSON(w io.Writer, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // only for types this file defines: a bug
		panic(fmt.Sprintf("ejectsafe: JSON output: %v", err))
	}
	w.Write(append(b, '\n'))
}

// nonNil returns s, or an empty slice for nil (so JSON says []).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// hexSum renders a 64-bit checksum for JSON.
func hexSum(v uint64) string { return fmt.Sprintf("%#016x", v) }

// volumeOut is a volume (probe.Result) in JSON.
type volumeOut struct {
	Path         string   `json:"path"`
	Mounted      bool     `json:"mounted"` // a volume other than the root filesystem is mounted there
	MountPoint   string   `json:"mount_point"`
	Device       string   `json:"device"`
	FSType       string   `json:"fs_type"`
	Class        string   `json:"class"`
	MountOptions []string `json:"mount_options"`
	ReadOnly     bool     `json:"read_only"`
	Removable    bool     `json:"removable"`
	USB          bool     `json:"usb"`
	Container    string   `json:"container"`
	VM           string   `json:"vm"`
	Notes        []string `json:"notes"`
}

func volumeJSON(p probe.Result, mounted bool) volumeOut {
	return volumeOut{
		Path: p.Path, Mounted: mounted, MountPoint: p.MountPoint, Device: p.Device, FSType: p.FSType,
		Class: p.Class.String(), MountOptions: nonNil(p.MountOptions), ReadOnly: p.ReadOnly,
		Removable: p.Removable, USB: p.USB, Container: p.Container, VM: p.VM, Notes: nonNil(p.Notes),
	}
}

// holderOut is one lease on a volume.
type holderOut struct {
	File string `json:"file"` // the lease file
	DB   string `json:"db"`
	// State: "live" (its holder answered), "no_answer" (alive, did not
	// answer), "stale" (its holder is gone), "invalid" (the lease file is
	// refused, not followed), "unreadable" (another user's lease, which
	// this user may not read: counted as live).
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"` // why stale, invalid or no_answer
	Blocks bool      `json:"blocks"`           // keeps the volume from being removed
	Lease  *leaseOut `json:"lease,omitempty"`
	Live   *liveOut  `json:"live,omitempty"` // the holder's answer
}

type leaseOut struct {
	PID      int       `json:"pid"`
	Host     string    `json:"host"`
	Boot     string    `json:"boot"`
	State    string    `json:"state"`
	Endpoint string    `json:"endpoint"`
	Since    time.Time `json:"since"`
}

type liveOut struct {
	State          string     `json:"state"`
	DirtyBytes     int64      `json:"dirty_bytes"` // not yet checkpointed
	WALBytes       int64      `json:"wal_bytes"`
	Generation     uint64     `json:"generation"`
	LastCheckpoint *time.Time `json:"last_checkpoint"` // null: never
}

func holderJSON(h holder) holderOut {
	o := holderOut{File: h.File, DB: h.DB, Blocks: h.blocks()}
	switch {
	case h.Unreadable != "":
		o.State, o.Reason = "unreadable", h.Unreadable
	case h.Invalid != "":
		o.State, o.Reason = "invalid", h.Invalid
	case h.Stale != "":
		o.State, o.Reason = "stale", h.Stale
	case h.Live != nil:
		o.State = "live"
	default:
		o.State, o.Reason = "no_answer", h.NoAnswer
	}
	if l := h.Lease; l != nil {
		o.Lease = &leaseOut{PID: l.PID, Host: l.Host, Boot: l.Boot, State: l.State, Endpoint: l.Endpoint, Since: l.Since}
	}
	if s := h.Live; s != nil {
		o.Live = &liveOut{State: s.State, DirtyBytes: s.DirtyBytes, WALBytes: s.WALBytes, Generation: s.Generation}
		if !s.LastCheckpoint.IsZero() {
			t := s.LastCheckpoint
			o.Live.LastCheckpoint = &t
		}
	}
	return o
}

// userOut is a process with files open on a volume.
type userOut struct {
	PID     int      `json:"pid"`
	Command string   `json:"command"`
	Holder  bool     `json:"holder"` // it holds a lease: eject asks it to release
	Files   []string `json:"files"`
}

func usersJSON(us []user) []userOut {
	out := []userOut{}
	for _, u := range us {
		out = append(out, userOut{PID: u.PID, Command: u.Command, Holder: u.Holder, Files: nonNil(u.Files)})
	}
	return out
}

// statusOut is `status --json`.
type statusOut struct {
	header
	Volume  volumeOut   `json:"volume"`
	Holders []holderOut `json:"holders"`
	Users   []userOut   `json:"users"`
	// Uninspected counts processes whose open files could not be read
	// (other users' processes, without root): users may miss them.
	Uninspected int `json:"uninspected"`
}

func statusJSON(cmd string, code int, v volume) statusOut {
	o := statusOut{header: newHeader(cmd, code), Volume: volumeJSON(v.Probe, v.Mounted), Holders: []holderOut{}, Users: usersJSON(v.Users), Uninspected: v.Uninspected}
	for _, h := range v.Holders {
		o.Holders = append(o.Holders, holderJSON(h))
	}
	return o
}

// checkOut is `check --json`.
type checkOut struct {
	statusOut
	Safe    bool     `json:"safe"`
	Synced  bool     `json:"synced"`  // sync(2) ran before the verdict
	Reasons []string `json:"reasons"` // why not safe; [] when safe
}

// recordOut is a checkpoint journal record.
type recordOut struct {
	Kind string `json:"kind"` // began, ready, done, aborted
	Gen  uint64 `json:"gen"`
	Size int64  `json:"size"`
	Sum  string `json:"sum"` // hex
}

// enumName is an enum's JSON name (its MarshalText), or fallback for a
// value the enum does not define.
func enumName(m encoding.TextMarshaler, fallback string) string {
	b, err := m.MarshalText()
	if err != nil {
		return fallback
	}
	return string(b)
}

func kindName(k journal.Kind) string {
	switch k {
	case journal.Began, journal.Ready, journal.Done, journal.Aborted, journal.Intent:
		return k.String()
	}
	return fmt.Sprintf("kind_%d", uint8(k))
}

// recoverOut is `recover --json`; verifyOut adds the verify fields.
type recoverOut struct {
	header
	DB         string     `json:"db"`
	DryRun     bool       `json:"dry_run"`
	Journal    string     `json:"journal"` // missing, ok, torn, or "damaged: " and why
	Last       *recordOut `json:"last"`    // null: no trustworthy record
	State      string     `json:"state"`
	Action     string     `json:"action"`
	Gen        uint64     `json:"gen"`
	Removed    []string   `json:"removed"`
	MovedAside []string   `json:"moved_aside"`
	Rewrote    bool       `json:"rewrote"`
	Mismatch   bool       `json:"mismatch"`
	Notes      []string   `json:"notes"`
}

type verifyOut struct {
	recoverOut
	Integrity string     `json:"integrity"` // integrity_check's lines, joined by "; "
	Stock     []stockOut `json:"stock"`     // stock SQLite's -wal and -journal beside the database
	OK        bool       `json:"ok"`
}

// stockOut is one store.StockFinding.
type stockOut struct {
	Path    string `json:"path"`
	Note    string `json:"note"`
	Foreign bool   `json:"foreign"` // does not belong to the database: not clean
	// Whether it belongs could not be told (a damaged or too large
	// database): not clean either.
	Unchecked bool `json:"unchecked"`
}

func reportJSON(cmd string, code int, r checkpoint.Report) recoverOut {
	o := recoverOut{
		header: newHeader(cmd, code), DB: r.DB, DryRun: r.DryRun, Journal: r.Journal,
		State: enumName(r.State, fmt.Sprintf("state_%d", int(r.State))), Action: enumName(r.Action, fmt.Sprintf("action_%d", int(r.Action))), Gen: r.Gen,
		Removed: nonNil(r.Removed), MovedAside: nonNil(r.MovedAside), Rewrote: r.Rewrote,
		Mismatch: r.Mismatch, Notes: nonNil(r.Notes),
	}
	if r.Last.Kind != 0 {
		o.Last = &recordOut{Kind: kindName(r.Last.Kind), Gen: r.Last.Gen, Size: r.Last.Size, Sum: hexSum(r.Last.Sum)}
	}
	return o
}

// doctorOut is `doctor --json`. Statuses are "ok", "warn", "fail" and
// "info" (informational: not part of the verdict).
type doctorOut struct {
	header
	Path                 string       `json:"path"`
	Dir                  string       `json:"dir"`
	Volume               volumeOut    `json:"volume"`
	Findings             []findingOut `json:"findings"`
	Fsync                *fsyncOut    `json:"fsync"`                  // null: not measured
	SharedMemoryCoherent *bool        `json:"shared_memory_coherent"` // null: not concluded
	Overall              string       `json:"overall"`
}

type findingOut struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
}

type fsyncOut struct {
	Samples int   `json:"samples"`
	Bytes   int   `json:"bytes"`
	P50NS   int64 `json:"p50_ns"`
	P99NS   int64 `json:"p99_ns"`
}

func doctorJSON(r *doctorReport) doctorOut {
	o := doctorOut{
		header: newHeader("doctor", r.ExitCode), Path: r.Path, Dir: r.Dir,
		Volume:   volumeJSON(r.Probe, r.Probe.MountPoint != "" && r.Probe.MountPoint != "/"),
		Findings: []findingOut{}, SharedMemoryCoherent: r.SharedMemoryCoherent, Overall: strings.ToLower(r.Overall),
	}
	for _, f := range r.Findings {
		o.Findings = append(o.Findings, findingOut{f.Check, strings.ToLower(f.Status), f.Summary})
	}
	if f := r.Fsync; f != nil {
		o.Fsync = &fsyncOut{f.Samples, f.Bytes, int64(f.P50), int64(f.P99)}
	}
	return o
}
