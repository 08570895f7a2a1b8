package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the checked-in seeds in testdata/fuzz/FuzzDecode")

// decodeErrors is every error Decode may return (wrapped).
var decodeErrors = []error{ErrShortHeader, ErrBadMagic, ErrVersion, ErrHeaderChecksum, ErrHeader, ErrRecord}

// FuzzDecode's inputs are compact: expand turns one into the journal
// bytes to decode. In a journal, 4032 of every 4096 bytes are padding, so
// the fuzzer's byte mutations would rarely reach a field; and Go's
// fuzzer minimizes each new interesting input by trying to remove every
// byte and every run of bytes, which takes minutes on a few slots. The
// compact form is a run of units of BodySize+1 bytes, one per slot: the
// slot's body, then a control byte c:
//
//	0        the slot is whole, its padding zero;
//	1-127    the slot is whole, its padding zero but for the byte at
//	         padAt(c-1), which is c: garbage in the padding;
//	128-255  the slot, and the file, end after padAt(c-128) bytes: a
//	         file cut in a slot's padding.
//
// A last unit shorter than BodySize+1 bytes is appended as is: a file
// cut in a body, or a header-sized scrap.
func expand(in []byte) []byte {
	var out []byte
	for len(in) > BodySize {
		body, c := in[:BodySize], in[BodySize]
		in = in[BodySize+1:]
		at := len(out)
		out = append(append(out, body...), zeroSlot[BodySize:]...)
		switch {
		case c >= 128:
			return out[:at+padAt(c-128)]
		case c > 0:
			out[at+padAt(c-1)] = c
		}
	}
	return append(out, in...)
}

// padAt returns the offset in a slot that a control byte names: every
// 32nd byte of the padding from its first, then its last.
func padAt(k byte) int { return min(BodySize+int(k)*32, SlotSize-1) }

// compact is expand's inverse, for the seeds; ok is false if expand
// cannot produce b.
func compact(b []byte) (in []byte, ok bool) {
	in = []byte{}
	for len(b) > BodySize {
		slot := b[:min(len(b), SlotSize)]
		b = b[len(slot):]
		in = append(in, slot[:BodySize]...)
		pad := slot[BodySize:]
		if len(slot) < SlotSize { // cut in the padding
			c := slices.IndexFunc(controls(), func(c byte) bool { return c >= 128 && padAt(c-128) == len(slot) })
			if c < 0 || !allZero(pad) || len(b) > 0 {
				return nil, false
			}
			return append(in, controls()[c]), true
		}
		c := byte(0)
		if i := slices.IndexFunc(pad, func(x byte) bool { return x != 0 }); i >= 0 {
			c = pad[i]
			if c >= 128 || padAt(c-1) != BodySize+i || !allZero(pad[i+1:]) {
				return nil, false
			}
		}
		in = append(in, c)
	}
	return append(in, b...), true
}

// controls returns every control byte.
func controls() []byte {
	cs := make([]byte, 256)
	for i := range cs {
		cs[i] = byte(i)
	}
	return cs
}

// padGarbage returns a copy of b with the padding byte that control byte
// c (1-127) names set, in the slot at offset slot.
func padGarbage(b []byte, slot int, c byte) []byte {
	b = bytes.Clone(b)
	b[slot+padAt(c-1)] = c
	return b
}

// seeds returns named journals for FuzzDecode, which takes them
// compacted: valid journals, torn and damaged ones, and ones that fail
// each way. Every one is in expand's image.
func seeds(t testing.TB) map[string][]byte {
	h := Header{FileID: testFileID, BaseGen: 2}
	many := encode(t, h, history(2, 2, true)) // began, aborted, began, ready
	two := encode(t, h, history(2, 1, false)) // began, aborted
	s := map[string][]byte{
		"empty":          nil,
		"header-only":    AppendHeader(nil, h),
		"one-began":      encode(t, h, history(2, 1, true)[:1]),
		"many":           many,
		"many-finished":  encode(t, Header{FileID: 7, BaseGen: 2}, history(0, 3, false)[5:]), // began, ready, done
		"torn-mid":       many[:len(many)-RecordSize/2],
		"torn-body":      many[:len(many)-RecordSize+BodySize],
		"torn-header":    many[:HeaderSize-1],
		"zero-tail":      append(bytes.Clone(two), make([]byte, 2*RecordSize)...),
		"zero-cut":       append(bytes.Clone(two), make([]byte, RecordSize+BodySize)...),
		"free-garbage":   padGarbage(append(bytes.Clone(two), make([]byte, 2*RecordSize)...), len(two), 3),
		"free-then-good": appendFrame(append(bytes.Clone(two), make([]byte, RecordSize)...), h.FileID, Record{Kind: Began, Gen: 5}),
		"damaged":        corrupt(many, HeaderSize+RecordSize+9),
		"padding":        padGarbage(two, len(two)-RecordSize, 127),
		"damaged-pad":    padGarbage(many, HeaderSize+2*RecordSize, 1),
		"other-journal":  appendFrame(bytes.Clone(two), h.FileID+1, Record{Kind: Began, Gen: 4}),
		"bad-order":      appendFrame(bytes.Clone(two), h.FileID, Record{Kind: Began, Gen: 3}),
		"bad-kind":       appendFrame(AppendHeader(nil, h), h.FileID, Record{Kind: 7, Gen: 3}),
		"bad-magic":      corrupt(two, 0),
		"bad-checksum":   corrupt(two, hdrFileID),
		"header-padding": padGarbage(two, 0, 15), // the 512-byte sector after the body
		"garbage":        []byte("SQLite format 3\x00 and then 64 bytes that are not a journal at all"),
		"version-1":      version1Journal()[:BodySize],
	}
	v3 := bytes.Clone(s["header-only"])
	v3[hdrVersion] = 3
	reseal(v3)
	s["version-3"] = v3
	return s
}

// corrupt returns a copy of b with the byte at i flipped.
func corrupt(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x5a
	return b
}

// isFree reports whether b is free slots only (T1, T2).
func isFree(b []byte) bool { return len(b)%SlotSize == 0 && allZero(b) }

// checkDecode asserts everything Decode promises about any input.
func checkDecode(t *testing.T, b []byte) {
	in := bytes.Clone(b)
	j, err := Decode(b)
	if !bytes.Equal(b, in) {
		t.Fatal("Decode modified its input")
	}
	if err != nil {
		if !slices.ContainsFunc(decodeErrors, func(e error) bool { return errors.Is(err, e) }) {
			t.Fatalf("Decode error %v is not one of the documented sentinels", err)
		}
		if !errors.Is(err, ErrRecord) {
			if !reflect.DeepEqual(j, Journal{}) {
				t.Fatalf("Decode returned %+v with header error %v", j, err)
			}
			return
		}
	}

	// The decoded prefix re-encodes to exactly the input's first Len bytes.
	if j.Len != HeaderSize+len(j.Records)*RecordSize || j.Len > len(b) {
		t.Fatalf("Len %d with %d records of a %d-byte input", j.Len, len(j.Records), len(b))
	}
	enc := AppendHeader(nil, j.Header)
	for i, r := range j.Records {
		if cerr := (Journal{Header: j.Header, Records: j.Records[:i]}).Check(r); cerr != nil {
			t.Fatalf("decoded record %d fails Check: %v", i, cerr)
		}
		var aerr error
		if enc, aerr = AppendRecord(enc, j.Header.FileID, r); aerr != nil {
			t.Fatalf("decoded record %d does not encode: %v", i, aerr)
		}
	}
	if !bytes.Equal(enc, b[:j.Len]) {
		t.Fatalf("re-encoded prefix differs from the input's first %d bytes", j.Len)
	}

	switch {
	case err != nil: // ErrRecord: a whole good frame follows the prefix
		if j.Torn || j.Damaged || len(b)-j.Len < RecordSize {
			t.Fatalf("ErrRecord with Torn %v, Damaged %v, %d bytes after the prefix", j.Torn, j.Damaged, len(b)-j.Len)
		}
	case j.Torn == isFree(b[j.Len:]):
		t.Fatalf("Torn %v with %d bytes after the prefix, free %v", j.Torn, len(b)-j.Len, isFree(b[j.Len:]))
	case j.Torn && j.Free != 0, !j.Torn && j.Len+j.Free*RecordSize != len(b):
		t.Fatalf("Free %d, Torn %v, Len %d of %d bytes", j.Free, j.Torn, j.Len, len(b))
	case j.Damaged && !j.Torn:
		t.Fatal("Damaged but not Torn")
	case j.Damaged && len(b)-j.Len < 2*RecordSize:
		t.Fatalf("Damaged with only %d bytes after the prefix", len(b)-j.Len)
	}

	// The prefix alone decodes to the same journal, clean.
	j2, err2 := Decode(b[:j.Len])
	if err2 != nil || j2.Header != j.Header || !equalRecords(j2.Records, j.Records) || j2.Torn || j2.Damaged {
		t.Fatalf("prefix decodes to %+v, %v", j2, err2)
	}

	// The helpers agree with the records.
	c, ok := j.Latest()
	last, lok := j.Last()
	if ok != lok || ok != (len(j.Records) > 0) || c.Gen != last.Gen || c.State != last.Kind ||
		(ok && (c.Began.Kind != Began || c.Began.Gen != c.Gen)) {
		t.Fatalf("Latest() = %+v, %v; Last() = %v, %v", c, ok, last, lok)
	}
	if g := j.NextGen(); !c.InFlight() && g != 0 {
		if cerr := j.Check(Record{Kind: Began, Gen: g}); cerr != nil {
			t.Fatalf("NextGen() = %d is not a valid next Began: %v", g, cerr)
		}
	}
}

// FuzzDecode checks Decode on expand(in), and on in itself, which
// exercises the header checks on short and arbitrary input.
func FuzzDecode(f *testing.F) {
	for name, b := range seeds(f) {
		in, ok := compact(b)
		if !ok {
			f.Fatalf("seed %s is not in expand's image", name)
		}
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
		checkDecode(t, expand(in))
	})
}

// FuzzRecords fuzzes record contents and order behind valid checksums,
// which FuzzDecode's byte mutations rarely produce: every 16 bytes of
// input are one record (kind, gen, size and sum from a byte each), and
// Decode must agree with Check on where the journal stops being valid.
func FuzzRecords(f *testing.F) {
	f.Add(uint64(0), []byte{})
	f.Add(uint64(0), []byte{1, 1, 0, 0, 2, 1, 1, 1, 3, 1, 1, 1, 1, 2, 0, 0, 4, 2, 0, 0})
	f.Add(uint64(5), []byte{1, 5, 0, 0, 1, 6, 0, 0})
	f.Fuzz(func(t *testing.T, base uint64, data []byte) {
		h := Header{FileID: 99, BaseGen: base}
		var rs []Record
		for ; len(data) >= 4; data = data[4:] {
			rs = append(rs, Record{
				Kind: Kind(data[0] % 6), Gen: base + uint64(data[1]%4),
				Size: int64(data[2]%3) - 1, Sum: uint64(data[3] % 2),
			})
		}
		b := AppendHeader(nil, h)
		for _, r := range rs {
			b = appendFrame(b, h.FileID, r)
		}
		checkDecode(t, b)
		j, err := Decode(b)
		want := Journal{Header: h}
		for _, r := range rs {
			if want.Check(r) != nil {
				break
			}
			want.Records = append(want.Records, r)
		}
		if !equalRecords(j.Records, want.Records) || (err == nil) != (len(want.Records) == len(rs)) {
			t.Fatalf("Decode kept %d records (err %v); Check accepts %d of %d", len(j.Records), err, len(want.Records), len(rs))
		}
	})
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzDecode in step with seeds:
// go test ./journal -run TestFuzzSeeds -update-seeds rewrites it.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if *updateSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	all := seeds(t)
	// A seed file no seed writes any more is stale too.
	files, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, path := range files {
		if _, ok := all[strings.TrimPrefix(filepath.Base(path), "seed-")]; ok {
			continue
		}
		if *updateSeeds {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s is not a seed any more: run with -update-seeds", path)
	}
	for name, b := range all {
		in, ok := compact(b)
		if !ok {
			t.Errorf("seed %s is not in expand's image", name)
			continue
		}
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
		path := filepath.Join(dir, "seed-"+name)
		if *updateSeeds {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (err %v): run with -update-seeds", path, err)
		}
	}
}

// TestSeeds_Outcomes checks that the seeds reach the outcomes they are
// named for, and survive compact and expand.
func TestSeeds_Outcomes(t *testing.T) {
	s := seeds(t)
	for name, b := range s {
		if in, ok := compact(b); !ok || !bytes.Equal(expand(in), b) {
			t.Errorf("seed %s: compact ok %v, expands to %d bytes of %d", name, ok, len(expand(in)), len(b))
		}
	}
	for name, want := range map[string]error{
		"empty": ErrShortHeader, "torn-header": ErrShortHeader, "garbage": ErrBadMagic,
		"bad-magic": ErrBadMagic, "bad-checksum": ErrHeaderChecksum, "header-padding": ErrHeaderChecksum,
		"version-1": ErrVersion, "version-3": ErrVersion, "bad-order": ErrRecord, "bad-kind": ErrRecord,
	} {
		if _, err := Decode(s[name]); !errors.Is(err, want) {
			t.Errorf("seed %s: error %v, want %v", name, err, want)
		}
	}
	for name, torn := range map[string]bool{
		"header-only": false, "one-began": false, "many": false, "many-finished": false,
		"torn-mid": true, "torn-body": true, "zero-tail": false, "damaged": true, "padding": true,
		"damaged-pad": true, "other-journal": true, "zero-cut": true, "free-garbage": true, "free-then-good": true,
	} {
		j, err := Decode(s[name])
		damaged := name == "damaged" || name == "damaged-pad" || name == "free-then-good"
		if err != nil || j.Torn != torn || j.Damaged != damaged {
			t.Errorf("seed %s: Torn %v, Damaged %v, err %v; want Torn %v, Damaged %v", name, j.Torn, j.Damaged, err, torn, damaged)
		}
	}
	for name, v := range map[string]uint32{"version-1": 1, "version-3": 3} {
		if n := binary.LittleEndian.Uint32(s[name][hdrVersion:]); n != v {
			t.Errorf("%s seed has version %d", name, n)
		}
	}
	if len(s["garbage"]) != BodySize {
		t.Errorf("garbage seed is %d bytes, want %d: enough for the magic check", len(s["garbage"]), BodySize)
	}
}
