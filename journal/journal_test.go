package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

const testFileID = 0x0123456789abcdef

// history returns the records of n checkpoints, generations base+1 to
// base+n, ending in each of the ways a checkpoint can end, the last one
// in flight (ready) when inFlight is set.
func history(base uint64, n int, inFlight bool) []Record {
	var rs []Record
	for i := 1; i <= n; i++ {
		g := base + uint64(i)
		size := int64(4096 * i)
		began := Record{Kind: Began, Gen: g, Size: size, Sum: g * 0x9e3779b97f4a7c15}
		ready := Record{Kind: Ready, Gen: g, Size: size + 4096, Sum: ^g}
		rs = append(rs, began)
		if i == n && inFlight {
			return append(rs, ready)
		}
		switch i % 4 {
		case 1: // aborted before ready: ENOSPC while copying
			rs = append(rs, Record{Kind: Aborted, Gen: g})
		case 2: // aborted after ready: recovery found the copy bad
			rs = append(rs, ready, Record{Kind: Aborted, Gen: g})
		default:
			rs = append(rs, ready, Record{Kind: Done, Gen: g, Size: ready.Size, Sum: ready.Sum})
		}
	}
	return rs
}

// encode encodes a journal, failing the test on invalid records.
func encode(t testing.TB, h Header, rs []Record) []byte {
	t.Helper()
	b := AppendHeader(nil, h)
	for _, r := range rs {
		var err error
		if b, err = AppendRecord(b, h.FileID, r); err != nil {
			t.Fatalf("AppendRecord(%v): %v", r, err)
		}
	}
	return b
}

// mustDecode decodes b, failing the test on error.
func mustDecode(t testing.TB, b []byte) Journal {
	t.Helper()
	j, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return j
}

// equalRecords treats nil and empty alike.
func equalRecords(a, b []Record) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// reseal recomputes, in place, the CRC-32C that ends the body of the
// header or frame that b starts with.
func reseal(b []byte) {
	n := BodySize - 4
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
}

// version1Hex is a version 1 journal, as the unreleased version 1 of this
// package wrote it: a 64-byte header (file id testFileID, base generation
// 0x1122) and one 64-byte frame (ready gen=3 size=0x2000
// sum=0xfedcba9876543210).
const version1Hex = "454a534a524e4c00" + "01000000" + "40000000" + "efcdab8967452301" + "2211000000000000" +
	"00000000000000000000000000000000000000000000000000000000" + "70d71fd3" +
	"02" + "00000000000000" + "efcdab8967452301" + "0300000000000000" + "0020000000000000" +
	"1032547698badcfe" + "0000000000000000000000000000000000000000" + "de394bb7"

// version1Journal returns version1Hex decoded.
func version1Journal() []byte {
	b, err := hex.DecodeString(version1Hex)
	if err != nil || len(b) != 128 {
		panic(fmt.Sprintf("version1Hex: %d bytes, %v", len(b), err))
	}
	return b
}

func TestKind_String(t *testing.T) {
	for k, want := range map[Kind]string{
		0: "Kind(0)", Began: "began", Ready: "ready", Done: "done", Aborted: "aborted", Intent: "intent", 200: "Kind(200)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestRecord_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Record
		ok   bool
	}{
		{"began", Record{Kind: Began, Gen: 1, Size: 8192, Sum: 42}, true},
		{"began empty database", Record{Kind: Began, Gen: 1}, true},
		{"ready", Record{Kind: Ready, Gen: math.MaxUint64, Size: math.MaxInt64, Sum: math.MaxUint64}, true},
		{"done", Record{Kind: Done, Gen: 7, Size: 4096, Sum: 1}, true},
		{"aborted", Record{Kind: Aborted, Gen: 7}, true},
		{"R1 kind zero", Record{Gen: 1}, false},
		{"intent", Record{Kind: Intent, Gen: 7, Size: 4096, Sum: 1}, true},
		{"R1 kind 6", Record{Kind: 6, Gen: 1}, false},
		{"R1 kind 255", Record{Kind: 255, Gen: 1}, false},
		{"R3 gen zero", Record{Kind: Began, Size: 4096}, false},
		{"R4 negative size", Record{Kind: Ready, Gen: 1, Size: -1}, false},
		{"R4 min int64", Record{Kind: Done, Gen: 1, Size: math.MinInt64}, false},
		{"R5 aborted with size", Record{Kind: Aborted, Gen: 1, Size: 4096}, false},
		{"R5 aborted with sum", Record{Kind: Aborted, Gen: 1, Sum: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			if got := err == nil; got != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrRecord) {
				t.Errorf("Validate() = %v, not ErrRecord", err)
			}
			_, aerr := AppendRecord(nil, 1, tc.r)
			if (aerr == nil) != tc.ok {
				t.Errorf("AppendRecord error = %v, want ok=%v", aerr, tc.ok)
			}
		})
	}
}

func TestJournal_Check(t *testing.T) {
	b1 := Record{Kind: Began, Gen: 1, Size: 4096, Sum: 11}
	r1 := Record{Kind: Ready, Gen: 1, Size: 8192, Sum: 12}
	d1 := Record{Kind: Done, Gen: 1, Size: 8192, Sum: 12}
	a1 := Record{Kind: Aborted, Gen: 1}
	i1 := Record{Kind: Intent, Gen: 1, Size: 8192, Sum: 12}
	b2 := Record{Kind: Began, Gen: 2, Size: 8192, Sum: 12}
	for _, tc := range []struct {
		name    string
		base    uint64
		prev    []Record
		next    Record
		ok      bool
		problem string // substring of the error
	}{
		{"O1 first began", 0, nil, b1, true, ""},
		{"O1 began after done", 0, []Record{b1, r1, d1}, b2, true, ""},
		{"O1 began after aborted", 0, []Record{b1, a1}, b2, true, ""},
		{"O1 began skips generations", 0, []Record{b1, a1}, Record{Kind: Began, Gen: 9}, true, ""},
		{"O1 began above base", 5, nil, Record{Kind: Began, Gen: 6}, true, ""},
		{"O1 began at base", 5, nil, Record{Kind: Began, Gen: 5}, false, "base generation"},
		{"O1 began after began", 0, []Record{b1}, b2, false, "not resolved"},
		{"O1 began after ready", 0, []Record{b1, r1}, b2, false, "not resolved"},
		{"O1 began same gen", 0, []Record{b1, a1}, b1, false, "increase"},
		{"O1 began lower gen", 0, []Record{b1, r1, d1, b2, {Kind: Aborted, Gen: 2}}, b1, false, "increase"},
		{"O2 ready after began", 0, []Record{b1}, r1, true, ""},
		{"O2 ready first", 0, nil, r1, false, "first record"},
		{"O2 ready other gen", 0, []Record{b1}, Record{Kind: Ready, Gen: 2}, false, "generation"},
		{"O2 ready after ready", 0, []Record{b1, r1}, r1, false, "not began"},
		{"O2 ready after done", 0, []Record{b1, r1, d1}, r1, false, "not began"},
		{"O3 done after ready", 0, []Record{b1, r1}, d1, true, ""},
		{"O3 done first", 0, nil, d1, false, "first record"},
		{"O3 done after began", 0, []Record{b1}, d1, false, "not ready"},
		{"O3 done other size", 0, []Record{b1, r1}, Record{Kind: Done, Gen: 1, Size: 4096, Sum: 12}, false, "differ"},
		{"O3 done other sum", 0, []Record{b1, r1}, Record{Kind: Done, Gen: 1, Size: 8192, Sum: 13}, false, "differ"},
		{"O3 done twice", 0, []Record{b1, r1, d1}, d1, false, "not ready"},
		{"O2 intent after began", 0, []Record{b1}, i1, true, ""},
		{"O2 intent after ready", 0, []Record{b1, r1}, i1, false, "not began"},
		{"O2 ready after intent", 0, []Record{b1, i1}, r1, false, "not began"},
		{"O3 done after intent", 0, []Record{b1, i1}, d1, true, ""},
		{"O3 done other than intent", 0, []Record{b1, i1}, Record{Kind: Done, Gen: 1, Size: 8192, Sum: 13}, false, "differ"},
		{"O4 aborted after intent", 0, []Record{b1, i1}, a1, true, ""},
		{"O1 began after intent", 0, []Record{b1, i1}, b2, false, "not resolved"},
		{"O4 aborted after began", 0, []Record{b1}, a1, true, ""},
		{"O4 aborted after ready", 0, []Record{b1, r1}, a1, true, ""},
		{"O4 aborted first", 0, nil, a1, false, "first record"},
		{"O4 aborted after done", 0, []Record{b1, r1, d1}, a1, false, "not began, ready or intent"},
		{"O4 aborted twice", 0, []Record{b1, a1}, a1, false, "not began, ready or intent"},
		{"O4 aborted other gen", 0, []Record{b1}, Record{Kind: Aborted, Gen: 2}, false, "generation"},
		{"R1 checked too", 0, nil, Record{Kind: 9, Gen: 1}, false, "kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := Journal{Header: Header{FileID: 1, BaseGen: tc.base}, Records: tc.prev}
			err := j.Check(tc.next)
			if got := err == nil; got != tc.ok {
				t.Fatalf("Check(%v) = %v, want ok=%v", tc.next, err, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), tc.problem)) {
				t.Errorf("Check(%v) = %v, want ErrRecord mentioning %q", tc.next, err, tc.problem)
			}

			// Decode applies the same rule to an encoded journal.
			h := Header{FileID: 1, BaseGen: tc.base}
			b := appendFrame(encode(t, h, tc.prev), h.FileID, tc.next)
			got, derr := Decode(b)
			if (derr == nil) != tc.ok {
				t.Fatalf("Decode error = %v, want ok=%v", derr, tc.ok)
			}
			if derr != nil {
				if !errors.Is(derr, ErrRecord) {
					t.Errorf("Decode error = %v, not ErrRecord", derr)
				}
				if !equalRecords(got.Records, tc.prev) || got.Len != len(b)-RecordSize || got.Torn {
					t.Errorf("Decode with ErrRecord returned %+v, want the %d records before", got, len(tc.prev))
				}
			}
		})
	}
}

func TestDecode_RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Header
		rs   []Record
	}{
		{"empty", Header{FileID: testFileID}, nil},
		{"zero file id", Header{}, history(0, 3, false)},
		{"one began", Header{FileID: 1}, history(0, 1, true)[:1]},
		{"in flight", Header{FileID: testFileID}, history(0, 1, true)},
		{"many gens", Header{FileID: testFileID}, history(0, 100, false)},
		{"many gens in flight", Header{FileID: math.MaxUint64, BaseGen: 1 << 40}, history(1<<40, 57, true)},
		{"max gen", Header{FileID: 2, BaseGen: math.MaxUint64 - 1}, history(math.MaxUint64-1, 1, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encode(t, tc.h, tc.rs)
			if want := (1 + len(tc.rs)) * SlotSize; len(b) != want {
				t.Fatalf("encoded %d bytes, want %d", len(b), want)
			}
			j := mustDecode(t, b)
			if j.Header != tc.h || !equalRecords(j.Records, tc.rs) || j.Len != len(b) || j.Torn || j.Damaged {
				t.Fatalf("Decode = %+v, want header %+v and %d records", j, tc.h, len(tc.rs))
			}
			for i, r := range tc.rs {
				if err := (Journal{Header: tc.h, Records: tc.rs[:i]}).Check(r); err != nil {
					t.Errorf("Check of record %d: %v", i, err)
				}
			}
		})
	}
	t.Run("every kind", func(t *testing.T) {
		seen := map[Kind]bool{}
		for _, r := range history(0, 8, true) {
			seen[r.Kind] = true
		}
		if len(seen) != 4 {
			t.Errorf("history covers kinds %v, want all four", seen)
		}
	})
}

// TestFormat_Golden pins the encoding: changing it needs a new Version.
// The CRC-32C values were cross-checked with an independent bitwise
// implementation (polynomial 0x82f63b78, reflected), which also gives
// version1Hex's.
func TestFormat_Golden(t *testing.T) {
	b := AppendHeader(nil, Header{FileID: testFileID, BaseGen: 0x1122})
	b, err := AppendRecord(b, testFileID, Record{Kind: Ready, Gen: 3, Size: 0x2000, Sum: 0xfedcba9876543210})
	if err != nil {
		t.Fatal(err)
	}
	padding := strings.Repeat("00", 4096-64)
	want := "454a534a524e4c00" + "02000000" + "00100000" + "efcdab8967452301" + "2211000000000000" +
		strings.Repeat("00", 28) + "ac13b3ce" + padding +
		"02" + strings.Repeat("00", 7) + "efcdab8967452301" + "0300000000000000" + "0020000000000000" +
		"1032547698badcfe" + strings.Repeat("00", 20) + "de394bb7" + padding
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("encoding\n got %s\nwant %s", got, want)
	}
	// The layout's arithmetic: the checksum ends the body, padding fills
	// the slot, and a slot is whole sectors of 512 and of 4096 bytes.
	if hdrChecksum+4 != BodySize || recChecksum+4 != BodySize || hdrPadding != BodySize || recPadding != BodySize ||
		HeaderSize != SlotSize || RecordSize != SlotSize || SlotSize%512 != 0 || SlotSize%4096 != 0 {
		t.Error("layout constants disagree")
	}
}

func TestDecode_TornTail(t *testing.T) {
	rs := history(0, 6, true)
	b := encode(t, Header{FileID: testFileID}, rs)
	for cut := 0; cut <= len(b); cut++ {
		j, err := Decode(b[:cut])
		if cut < HeaderSize {
			if !errors.Is(err, ErrShortHeader) {
				t.Fatalf("cut %d: error %v, want ErrShortHeader", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		n := (cut - HeaderSize) / RecordSize
		aligned := (cut-HeaderSize)%RecordSize == 0
		if !equalRecords(j.Records, rs[:n]) || j.Len != HeaderSize+n*RecordSize || j.Torn == aligned || j.Damaged {
			t.Fatalf("cut %d: got %d records, Len %d, Torn %v, Damaged %v; want %d records, Torn %v",
				cut, len(j.Records), j.Len, j.Torn, j.Damaged, n, !aligned)
		}
	}
}

// TestDecode_BitFlip flips every bit of every body, and one bit of every
// padding byte (bit i%8 of byte i: every bit position, in every sector).
func TestDecode_BitFlip(t *testing.T) {
	rs := history(0, 4, false)
	orig := encode(t, Header{FileID: testFileID}, rs)
	b := bytes.Clone(orig)
	for i := range b {
		for bit := range 8 {
			if i%SlotSize >= BodySize && bit != i%8 {
				continue
			}
			b[i] ^= 1 << bit
			j, err := Decode(b)
			b[i] ^= 1 << bit
			if i < HeaderSize {
				if err == nil || !(errors.Is(err, ErrBadMagic) || errors.Is(err, ErrVersion) || errors.Is(err, ErrHeaderChecksum)) {
					t.Fatalf("flip byte %d bit %d: error %v, want a header error", i, bit, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("flip byte %d bit %d: %v", i, bit, err)
			}
			n := (i - HeaderSize) / RecordSize
			if !equalRecords(j.Records, rs[:n]) || !j.Torn || j.Damaged != (n < len(rs)-1) {
				t.Fatalf("flip byte %d bit %d: got %d records, Torn %v, Damaged %v; want the %d before",
					i, bit, len(j.Records), j.Torn, j.Damaged, n)
			}
		}
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("test did not restore its input")
	}
}

// TestDecode_Free: a preallocated journal, records then free (all-zero)
// slots, decodes to exactly its records, not torn, with its free slots.
func TestDecode_Free(t *testing.T) {
	h := Header{FileID: testFileID, BaseGen: 4}
	rs := history(4, 3, true)
	for k := range len(rs) + 1 {
		for _, free := range []int{0, 1, 60} {
			b := encode(t, h, rs[:k])
			b = append(b, make([]byte, free*RecordSize)...)
			j := mustDecode(t, b)
			if !equalRecords(j.Records, rs[:k]) || j.Len != HeaderSize+k*RecordSize || j.Free != free || j.Torn || j.Damaged {
				t.Errorf("%d records, %d free: got %d records, Len %d, Free %d, Torn %v, Damaged %v",
					k, free, len(j.Records), j.Len, j.Free, j.Torn, j.Damaged)
			}
		}
	}
}

func TestDecode_TornFrames(t *testing.T) {
	h := Header{FileID: testFileID}
	rs := history(0, 2, false)
	valid := encode(t, h, rs)
	next := Record{Kind: Began, Gen: 3, Size: 1, Sum: 2}
	for _, tc := range []struct {
		name    string
		tail    []byte
		damaged bool
	}{
		{"zeros past a frame", make([]byte, 3*RecordSize+5), false}, // T1: not free space
		{"garbage in the first free slot", append(garbagePadding(make([]byte, RecordSize), 100), make([]byte, 2*RecordSize)...), false},
		{"garbage in a later free slot", append(make([]byte, 2*RecordSize), garbagePadding(make([]byte, RecordSize), RecordSize-1)...), false},
		{"good frame after a free slot", appendFrame(make([]byte, 2*RecordSize), h.FileID, next), true},
		{"ones", bytes.Repeat([]byte{0xff}, RecordSize), false},
		{"frame of another journal", appendFrame(nil, testFileID+1, next), false},
		{"header again", AppendHeader(nil, h), false},
		{"good frame after garbage", appendFrame(make([]byte, RecordSize), h.FileID, next), true},
		{"good frame after short garbage", appendFrame(make([]byte, RecordSize), h.FileID, next)[7:], false},
		{"body only", appendFrame(nil, h.FileID, next)[:BodySize], false},
		{"frame cut in its padding", appendFrame(nil, h.FileID, next)[:RecordSize-1], false},
		{"garbage in the padding", garbagePadding(appendFrame(nil, h.FileID, next), RecordSize-1), false},
		{"garbage after the body", garbagePadding(appendFrame(nil, h.FileID, next), BodySize), false},
		{"good frame after garbage padding",
			appendFrame(garbagePadding(appendFrame(nil, h.FileID, next), 512), h.FileID, Record{Kind: Aborted, Gen: 3}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := mustDecode(t, append(bytes.Clone(valid), tc.tail...))
			if !equalRecords(j.Records, rs) || j.Len != len(valid) || !j.Torn || j.Damaged != tc.damaged || j.Free != 0 {
				t.Errorf("got %d records, Len %d, Torn %v, Damaged %v; want %d, %d, true, %v",
					len(j.Records), j.Len, j.Torn, j.Damaged, len(rs), len(valid), tc.damaged)
			}
		})
	}
}

// garbage fills b with pseudo-random bytes drawn from seed, never all
// zero.
func garbage(b []byte, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if len(b) > 0 && allZero(b) {
		b[0] = 1
	}
}

// TestDecode_TornAppend proves what the slots are for. A power cut during
// an append may destroy every sector the append touches, 512 or 4096
// bytes, and with it any synced byte in those sectors. For a journal of
// n synced records and an append of k more (package checkpoint appends 1
// or 2 at a time), fill the sectors the append touches with garbage, all
// of them or one at a time with the rest of the append landed, and the
// header and the n records must still decode; of the appended records,
// only whole, untouched ones may follow.
func TestDecode_TornAppend(t *testing.T) {
	h := Header{FileID: testFileID, BaseGen: 5}
	all := history(5, 4, false)
	for n := 0; n < len(all); n++ {
		synced := encode(t, h, all[:n])
		for k := 1; k <= 3 && n+k <= len(all); k++ {
			full := encode(t, h, all[:n+k]) // synced, then the append
			off, end := len(synced), len(full)
			for _, sector := range []int{512, 4096} {
				// As faultinject's Garbage policies: whole sectors, clipped
				// to the end of the file.
				lo, hi := off/sector*sector, min((end+sector-1)/sector*sector, end)
				if lo < off {
					t.Fatalf("n=%d k=%d: the append at %d touches the %d-byte sector at %d, which holds synced bytes", n, k, off, sector, lo)
				}
				tears := [][2]int{{lo, hi}} // every sector at once
				for s := lo; s < hi && hi-lo > sector; s += sector {
					tears = append(tears, [2]int{s, min(s+sector, hi)}) // one sector, the rest landed
				}
				for ti, tear := range tears {
					for fill := range 3 {
						img := bytes.Clone(full)
						switch fill {
						case 0:
							garbage(img[tear[0]:tear[1]], uint64(n<<16|k<<12|ti<<2))
						case 1:
							copy(img[tear[0]:tear[1]], bytes.Repeat([]byte{0xff}, tear[1]-tear[0]))
						case 2: // stale bytes: the append's own frames, shifted
							copy(img[tear[0]:tear[1]], full[tear[0]-BodySize:])
						}
						j, err := Decode(img)
						if err != nil || j.Header != h || len(j.Records) < n || !equalRecords(j.Records[:n], all[:n]) {
							t.Fatalf("n=%d k=%d sector=%d tear %v fill %d: Decode = %d records, header %+v, %v; want the %d synced ones",
								n, k, sector, tear, fill, len(j.Records), j.Header, err, n)
						}
						// Of the appended frames, exactly those before the
						// first one the tear changed are records.
						want := n
						for ; want < n+k; want++ {
							at := HeaderSize + want*RecordSize
							if !bytes.Equal(img[at:at+RecordSize], full[at:at+RecordSize]) {
								break
							}
						}
						if !equalRecords(j.Records, all[:want]) || j.Torn != (want < n+k) {
							t.Fatalf("n=%d k=%d sector=%d tear %v fill %d: %d records, Torn %v; want %d records, Torn %v",
								n, k, sector, tear, fill, len(j.Records), j.Torn, want, want < n+k)
						}
					}
				}
			}
		}
	}
}

// garbagePadding sets byte i of the slot b, in its padding, and returns b.
func garbagePadding(b []byte, i int) []byte {
	b[i] = 0xa5
	return b
}

func TestDecode_BadRecord(t *testing.T) {
	h := Header{FileID: testFileID}
	rs := history(0, 2, false)
	valid := encode(t, h, rs)
	next := appendFrame(nil, h.FileID, Record{Kind: Began, Gen: 3, Size: 4096, Sum: 5})
	for _, tc := range []struct {
		name  string
		frame func([]byte)
	}{
		{"R1 kind", func(f []byte) { f[recKind] = 9 }},
		{"R2 reserved after kind", func(f []byte) { f[recReserved1+6] = 1 }},
		{"R2 reserved after sum", func(f []byte) { f[recReserved2] = 0x80 }},
		{"R3 gen zero", func(f []byte) { clear(f[recGen : recGen+8]) }},
		{"R4 size over MaxInt64", func(f []byte) { f[recSize+7] = 0x80 }},
		{"R5 aborted with sum", func(f []byte) { f[recKind] = byte(Aborted); clear(f[recSize : recSize+8]) }},
		{"O1 generation not increasing", func(f []byte) { f[recGen] = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bytes.Clone(next)
			tc.frame(f)
			reseal(f)
			b := append(bytes.Clone(valid), f...)
			b = appendFrame(b, h.FileID, Record{Kind: Aborted, Gen: 3})
			j, err := Decode(b)
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("Decode error = %v, want ErrRecord", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("record %d at offset %d", len(rs), len(valid))) {
				t.Errorf("error %q does not locate the record", err)
			}
			if !equalRecords(j.Records, rs) || j.Len != len(valid) || j.Torn {
				t.Errorf("got %d records, Len %d, Torn %v; want the %d before", len(j.Records), j.Len, j.Torn, len(rs))
			}
		})
	}
}

func TestDecode_Header(t *testing.T) {
	good := AppendHeader(nil, Header{FileID: testFileID, BaseGen: 3})
	for _, tc := range []struct {
		name   string
		edit   func([]byte) []byte
		want   error
		reseal bool
	}{
		{"empty", func(b []byte) []byte { return nil }, ErrShortHeader, false},
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrShortHeader, false},
		{"body only", func(b []byte) []byte { return b[:BodySize] }, ErrShortHeader, false},
		{"short body", func(b []byte) []byte { return b[:BodySize-1] }, ErrShortHeader, false},
		{"magic", func(b []byte) []byte { b[0] = 'e'; return b }, ErrBadMagic, true},
		{"magic nul", func(b []byte) []byte { b[7] = '1'; return b }, ErrBadMagic, true},
		{"zero file", func(b []byte) []byte { return make([]byte, len(b)) }, ErrBadMagic, false},
		{"a SQLite database", func(b []byte) []byte { return append([]byte("SQLite format 3\x00"), b[16:]...) }, ErrBadMagic, false},
		{"version 1", func(b []byte) []byte { b[hdrVersion] = 1; return b }, ErrVersion, true},
		{"version 1 journal", func(b []byte) []byte { return version1Journal() }, ErrVersion, false},
		{"version 1 header only", func(b []byte) []byte { return version1Journal()[:BodySize] }, ErrVersion, false},
		{"version 1 journal padded", func(b []byte) []byte { return append(version1Journal(), make([]byte, 2*SlotSize)...) }, ErrVersion, false},
		{"version 3", func(b []byte) []byte { b[hdrVersion] = 3; return b }, ErrVersion, true},
		{"version 3 short", func(b []byte) []byte { b[hdrVersion] = 3; return b[:BodySize] }, ErrVersion, false},
		{"version 0 bad checksum", func(b []byte) []byte { b[hdrVersion] = 0; return b }, ErrVersion, false},
		{"checksum", func(b []byte) []byte { b[hdrChecksum] ^= 1; return b }, ErrHeaderChecksum, false},
		{"file id", func(b []byte) []byte { b[hdrFileID] ^= 1; return b }, ErrHeaderChecksum, false},
		{"padding first byte", func(b []byte) []byte { b[hdrPadding] = 1; return b }, ErrHeaderChecksum, true},
		{"padding last byte", func(b []byte) []byte { b[HeaderSize-1] = 0x80; return b }, ErrHeaderChecksum, true},
		{"padding torn sector", func(b []byte) []byte { garbage(b[512:1024], 1); return b }, ErrHeaderChecksum, true},
		{"slot size of version 1", func(b []byte) []byte { b[hdrSlotSize] = 64; b[hdrSlotSize+1] = 0; return b }, ErrHeader, true},
		{"slot size 8192", func(b []byte) []byte { b[hdrSlotSize+1] = 0x20; return b }, ErrHeader, true},
		{"reserved", func(b []byte) []byte { b[hdrChecksum-1] = 1; return b }, ErrHeader, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(bytes.Clone(good))
			if tc.reseal {
				reseal(b[:HeaderSize])
			}
			j, err := Decode(b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if !reflect.DeepEqual(j, Journal{}) {
				t.Errorf("Decode returned %+v with a header error, want zero", j)
			}
		})
	}
}

func TestJournal_Latest(t *testing.T) {
	h := Header{FileID: 1, BaseGen: 10}
	rs := history(10, 3, true) // gen 13 in flight at ready
	b13, r13 := rs[len(rs)-2], rs[len(rs)-1]
	for _, tc := range []struct {
		name    string
		rs      []Record
		want    Checkpoint
		ok      bool
		next    uint64
		flight  bool
		lastGen uint64
	}{
		{"empty", nil, Checkpoint{}, false, 11, false, 0},
		{"began", rs[:len(rs)-1], Checkpoint{Gen: 13, State: Began, Began: b13}, true, 14, true, 13},
		{"ready", rs, Checkpoint{Gen: 13, State: Ready, Began: b13, Ready: r13}, true, 14, true, 13},
		{"done", append(rs[:len(rs):len(rs)], Record{Kind: Done, Gen: 13, Size: r13.Size, Sum: r13.Sum}),
			Checkpoint{Gen: 13, State: Done, Began: b13, Ready: r13}, true, 14, false, 13},
		{"aborted after ready", append(rs[:len(rs):len(rs)], Record{Kind: Aborted, Gen: 13}),
			Checkpoint{Gen: 13, State: Aborted, Began: b13, Ready: r13}, true, 14, false, 13},
		{"aborted after began", rs[:2], Checkpoint{Gen: 11, State: Aborted, Began: rs[0]}, true, 12, false, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := mustDecode(t, encode(t, h, tc.rs))
			got, ok := j.Latest()
			if got != tc.want || ok != tc.ok {
				t.Errorf("Latest() = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
			if got.InFlight() != tc.flight {
				t.Errorf("InFlight() = %v, want %v", got.InFlight(), tc.flight)
			}
			if g := j.NextGen(); g != tc.next {
				t.Errorf("NextGen() = %d, want %d", g, tc.next)
			}
			if last, ok := j.Last(); last.Gen != tc.lastGen || ok != (len(tc.rs) > 0) {
				t.Errorf("Last() = %v, %v", last, ok)
			}
		})
	}
	t.Run("generations exhausted", func(t *testing.T) {
		j := Journal{Header: Header{BaseGen: math.MaxUint64}}
		if g := j.NextGen(); g != 0 {
			t.Errorf("NextGen() = %d, want 0", g)
		}
	})
}

func TestName(t *testing.T) {
	for _, db := range []string{
		"/media/usb/app.db", "app.db", "/x/y-journal", "/x/y-wal", "/x/y-shm", "/x/Notes.SQLITE", "",
	} {
		for _, name := range []string{Name(db), TempName(db, 0), TempName(db, 1), TempName(db, math.MaxUint64)} {
			lower := strings.ToLower(name)
			for _, bad := range []string{"-journal", "-wal", "-shm"} {
				if strings.HasSuffix(lower, bad) {
					t.Errorf("%q ends in %q: SQLite would take it for its own file", name, bad)
				}
			}
			if !strings.HasPrefix(name, db) || name == db {
				t.Errorf("%q is not db path %q plus a suffix", name, db)
			}
		}
	}
	if got, want := Name("/m/a.db"), "/m/a.db.ejectsafe-jrnl"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if got, want := TempName("/m/a.db", 42), "/m/a.db"+fmt.Sprintf(".ejectsafe-tmp-%d", 42); got != want {
		t.Errorf("TempName = %q, want %q", got, want)
	}
	if Name("a") == TempName("a", 1) {
		t.Error("journal and temp names collide")
	}
}

func TestParseTempName(t *testing.T) {
	for _, gen := range []uint64{0, 1, 10, 1234567, math.MaxUint64} {
		for _, db := range []string{"/m/a.db", "a.db"} {
			if got, ok := ParseTempName(db, TempName(db, gen)); !ok || got != gen {
				t.Errorf("ParseTempName(%q, TempName(%d)) = %d, %v", db, gen, got, ok)
			}
		}
	}
	for _, name := range []string{
		"a.db", "a.db.ejectsafe-tmp-", "a.db.ejectsafe-tmp-01", "a.db.ejectsafe-tmp-+1", "a.db.ejectsafe-tmp--1",
		"a.db.ejectsafe-tmp-1x", "a.db.ejectsafe-tmp-18446744073709551616", "b.db.ejectsafe-tmp-1",
		"a.db.ejectsafe-jrnl", "xa.db.ejectsafe-tmp-1",
	} {
		if gen, ok := ParseTempName("a.db", name); ok {
			t.Errorf("ParseTempName(a.db, %q) = %d, true; want false", name, gen)
		}
	}
}

func TestSum(t *testing.T) {
	// CRC-32C and CRC-32 check values side by side: the format depends on
	// this exact function.
	if got, want := Sum([]byte("123456789")), uint64(0xe3069283cbf43926); got != want {
		t.Errorf("Sum(123456789) = %#x, want %#x", got, want)
	}
	if got := Sum(nil); got != 0 {
		t.Errorf("Sum(nil) = %#x, want 0", got)
	}
	data := bytes.Repeat([]byte("page of a database "), 5000)
	h := NewSum()
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 4093)
		h.Write(rest[:n])
		rest = rest[n:]
	}
	if got, want := h.Sum64(), Sum(data); got != want {
		t.Errorf("streamed sum %#x, want %#x", got, want)
	}
}

func TestNewFileID(t *testing.T) {
	if a, b := NewFileID(), NewFileID(); a == b {
		t.Errorf("two file ids are both %#x", a)
	}
}

func TestDecodeHeader(t *testing.T) {
	h := Header{FileID: 0x1122334455667788, BaseGen: 41}
	b := AppendHeader(nil, h)
	got, err := DecodeHeader(b)
	if err != nil || got != h {
		t.Fatalf("DecodeHeader = %+v, %v; want %+v", got, err, h)
	}
	// With records after it, as read from the start of a journal file.
	b, _ = AppendRecord(b, h.FileID, Record{Kind: Began, Gen: 42, Size: 4096, Sum: 7})
	if got, err := DecodeHeader(b); err != nil || got != h {
		t.Errorf("DecodeHeader with a record after = %+v, %v", got, err)
	}
	if _, err := DecodeHeader(b[:BodySize]); !errors.Is(err, ErrShortHeader) {
		t.Errorf("DecodeHeader of %d bytes = %v; want ErrShortHeader", BodySize, err)
	}
	b[hdrFileID] ^= 1
	if _, err := DecodeHeader(b); !errors.Is(err, ErrHeaderChecksum) {
		t.Errorf("DecodeHeader of a flipped id = %v; want ErrHeaderChecksum", err)
	}
}
