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
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the checked-in seeds in testdata/fuzz/FuzzDecode")

// decodeErrors is every error Decode may return (wrapped).
var decodeErrors = []error{ErrShortHeader, ErrBadMagic, ErrVersion, ErrHeaderChecksum, ErrHeader, ErrRecord}

// seeds returns named inputs for FuzzDecode: valid journals, torn and
// damaged ones, and ones that fail each way.
func seeds(t testing.TB) map[string][]byte {
	h := Header{FileID: testFileID, BaseGen: 2}
	many := encode(t, h, history(2, 12, true))
	s := map[string][]byte{
		"empty":         nil,
		"header-only":   AppendHeader(nil, h),
		"one-began":     encode(t, h, history(2, 1, true)[:1]),
		"many":          many,
		"many-finished": encode(t, Header{FileID: 7}, history(0, 9, false)),
		"torn-mid":      many[:len(many)-RecordSize/2],
		"torn-header":   many[:HeaderSize-3],
		"zero-tail":     append(bytes.Clone(many), make([]byte, 2*RecordSize)...),
		"damaged":       corrupt(many, HeaderSize+3*RecordSize+9),
		"other-journal": appendFrame(bytes.Clone(many), h.FileID+1, Record{Kind: Aborted, Gen: 14}),
		"bad-order":     appendFrame(bytes.Clone(many), h.FileID, Record{Kind: Began, Gen: 15}),
		"bad-kind":      appendFrame(AppendHeader(nil, h), h.FileID, Record{Kind: 7, Gen: 3}),
		"bad-magic":     corrupt(many, 0),
		"bad-checksum":  corrupt(many, hdrFileID),
		"garbage":       []byte("SQLite format 3\x00 and then some bytes that are not a journal at all, 64+"),
	}
	v2 := bytes.Clone(s["header-only"])
	v2[hdrVersion] = 2
	reseal(v2)
	s["version-2"] = v2
	return s
}

// corrupt returns a copy of b with the byte at i flipped.
func corrupt(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x5a
	return b
}

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
	case j.Torn != (j.Len < len(b)):
		t.Fatalf("Torn %v with %d bytes after the prefix", j.Torn, len(b)-j.Len)
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

func FuzzDecode(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkDecode)
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
	for name, b := range seeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
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

// TestSeeds_Outcomes checks that the seeds reach the outcomes they are named for.
func TestSeeds_Outcomes(t *testing.T) {
	s := seeds(t)
	for name, want := range map[string]error{
		"empty": ErrShortHeader, "torn-header": ErrShortHeader, "garbage": ErrBadMagic,
		"bad-magic": ErrBadMagic, "bad-checksum": ErrHeaderChecksum, "version-2": ErrVersion,
		"bad-order": ErrRecord, "bad-kind": ErrRecord,
	} {
		if _, err := Decode(s[name]); !errors.Is(err, want) {
			t.Errorf("seed %s: error %v, want %v", name, err, want)
		}
	}
	for name, torn := range map[string]bool{
		"header-only": false, "one-began": false, "many": false, "many-finished": false,
		"torn-mid": true, "zero-tail": true, "damaged": true, "other-journal": true,
	} {
		j, err := Decode(s[name])
		if err != nil || j.Torn != torn || j.Damaged != (name == "damaged") {
			t.Errorf("seed %s: Torn %v, Damaged %v, err %v; want Torn %v", name, j.Torn, j.Damaged, err, torn)
		}
	}
	if n := binary.LittleEndian.Uint32(s["version-2"][hdrVersion:]); n != 2 {
		t.Errorf("version-2 seed has version %d", n)
	}
}
