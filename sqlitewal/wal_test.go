package sqlitewal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// randomPages returns n distinct random page numbers in 1..dbPages with
// random contents of ps bytes.
func randomPages(rng *rand.Rand, n int, dbPages uint32, ps int) []Page {
	seen := map[uint32]bool{}
	var out []Page
	for len(out) < n {
		no := 1 + uint32(rng.Intn(int(dbPages)))
		if seen[no] {
			continue
		}
		seen[no] = true
		d := make([]byte, ps)
		rng.Read(d)
		out = append(out, Page{No: no, Data: d})
	}
	return out
}

// writeWAL writes pages with o and returns the file's bytes.
func writeWAL(t *testing.T, pages []Page, o WriteOptions) ([]byte, Header) {
	t.Helper()
	var b bytes.Buffer
	h, err := Write(&b, pages, o)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes(), h
}

func TestWrite_roundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, ps := range []int{512, 1024, 4096, 65536} {
		for _, ord := range []ChecksumOrder{NativeOrder, LittleEndian, BigEndian} {
			t.Run(fmt.Sprintf("ps=%d/order=%d", ps, ord), func(t *testing.T) {
				dbPages := uint32(1 + rng.Intn(200))
				pages := randomPages(rng, 1+rng.Intn(int(min(dbPages, 40))), dbPages, ps)
				b, h := writeWAL(t, pages, WriteOptions{PageSize: ps, DBPages: dbPages, CheckpointSeq: 7, Order: ord})
				if got, want := int64(len(b)), FileSize(len(pages), ps); got != want {
					t.Fatalf("size %d, want %d", got, want)
				}
				if got, want := h.BigEndian, ord == BigEndian || (ord == NativeOrder && hostBigEndian()); got != want {
					t.Errorf("BigEndian %v, want %v", got, want)
				}
				byNo := map[uint32][]byte{}
				for _, p := range pages {
					byNo[p.No] = p.Data
				}
				var last uint32
				s, err := Walk(bytes.NewReader(b), func(f Frame, page []byte) bool {
					if f.Page <= last {
						t.Errorf("frame %d: page %d after page %d: not ascending", f.Index, f.Page, last)
					}
					last = f.Page
					if !bytes.Equal(page, byNo[f.Page]) {
						t.Errorf("frame %d: page %d differs from what was written", f.Index, f.Page)
					}
					if want := uint32(0); f.Index == len(pages) {
						if f.Commit != dbPages {
							t.Errorf("commit frame says %d pages, want %d", f.Commit, dbPages)
						}
					} else if f.Commit != want {
						t.Errorf("frame %d: commit %d on a non-last frame", f.Index, f.Commit)
					}
					return true
				})
				if err != nil || s.End != nil {
					t.Fatalf("Walk: %v, end %v", err, s.End)
				}
				if s.Frames != len(pages) || s.Committed != len(pages) || s.DBPages != dbPages || s.Header != h {
					t.Errorf("scan %+v, want %d frames committed, %d pages, header %+v", s, len(pages), dbPages, h)
				}
				if _, err := Validate(bytes.NewReader(b), Expect{PageSize: ps, Salts: &[2]uint32{h.Salt1, h.Salt2}, Frames: len(pages), DBPages: dbPages}); err != nil {
					t.Errorf("Validate: %v", err)
				}
				if h.CheckpointSeq != 7 || h.Version != Version {
					t.Errorf("header %+v", h)
				}
			})
		}
	}
}

func TestWrite_freshSalts(t *testing.T) {
	pages := []Page{{No: 1, Data: make([]byte, 512)}}
	_, h1 := writeWAL(t, pages, WriteOptions{PageSize: 512, DBPages: 1})
	_, h2 := writeWAL(t, pages, WriteOptions{PageSize: 512, DBPages: 1})
	if h1.Salt1 == h2.Salt1 && h1.Salt2 == h2.Salt2 {
		t.Errorf("two logs got the same salts %08x %08x", h1.Salt1, h1.Salt2)
	}
	next, err := NextSalts(h1)
	if err != nil {
		t.Fatal(err)
	}
	if next[0] != h1.Salt1+1 {
		t.Errorf("NextSalts salt-1 %d, want %d", next[0], h1.Salt1+1)
	}
}

func TestWrite_rejects(t *testing.T) {
	page := func(no uint32, n int) Page { return Page{No: no, Data: make([]byte, n)} }
	for _, c := range []struct {
		name  string
		pages []Page
		o     WriteOptions
		want  error
	}{
		{"page size 0", []Page{page(1, 0)}, WriteOptions{DBPages: 1}, ErrPageSize},
		{"page size 1000", []Page{page(1, 1000)}, WriteOptions{PageSize: 1000, DBPages: 1}, ErrPageSize},
		{"page size 128 KiB", []Page{page(1, 1<<17)}, WriteOptions{PageSize: 1 << 17, DBPages: 1}, ErrPageSize},
		{"no pages", nil, WriteOptions{PageSize: 512, DBPages: 1}, ErrNoPages},
		{"page 0", []Page{page(0, 512)}, WriteOptions{PageSize: 512, DBPages: 1}, ErrZeroPage},
		{"beyond the end", []Page{page(1, 512), page(3, 512)}, WriteOptions{PageSize: 512, DBPages: 2}, ErrPageBeyondEnd},
		{"short page", []Page{page(1, 511)}, WriteOptions{PageSize: 512, DBPages: 1}, ErrPageData},
		{"twice", []Page{page(2, 512), page(1, 512), page(2, 512)}, WriteOptions{PageSize: 512, DBPages: 2}, ErrDuplicatePage},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			_, err := Write(&b, c.pages, c.o)
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes on error", b.Len())
			}
		})
	}
}

// resealHeader rewrites the header's checksum after a field was changed,
// so that only the change is wrong.
func resealHeader(b []byte, bigEndian bool) {
	s1, s2 := Checksum(bigEndian, b[:24], 0, 0)
	binary.BigEndian.PutUint32(b[24:], s1)
	binary.BigEndian.PutUint32(b[28:], s2)
}

func TestValidate_classifies(t *testing.T) {
	const ps = 1024
	rng := rand.New(rand.NewSource(2))
	pages := randomPages(rng, 6, 10, ps)
	good, h := writeWAL(t, pages, WriteOptions{PageSize: ps, DBPages: 10})
	salts := &[2]uint32{h.Salt1, h.Salt2}
	fo := func(i int) int { return int(FrameOffset(i, ps)) }
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, c := range []struct {
		name      string
		b         []byte
		e         Expect
		want      error
		walkErr   bool // Walk itself refuses the header
		committed int  // what SQLite replays (Walk's Committed)
	}{
		{"good", good, Expect{PageSize: ps, Salts: salts, Frames: 6, DBPages: 10}, nil, false, 6},
		{"empty", nil, Expect{}, ErrShortHeader, true, 0},
		{"short header", good[:31], Expect{}, ErrShortHeader, true, 0},
		{"header only", good[:HeaderSize], Expect{}, ErrNoCommit, false, 0},
		{"bad magic", mod(func(b []byte) []byte { b[3] = 0x84; resealHeader(b, false); return b }), Expect{}, ErrBadMagic, true, 0},
		{"page size 0", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0); resealHeader(b, h.BigEndian); return b }), Expect{}, ErrPageSize, true, 0},
		{"page size 1536", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 1536); resealHeader(b, h.BigEndian); return b }), Expect{}, ErrPageSize, true, 0},
		{"header checksum", mod(func(b []byte) []byte { b[13] ^= 1; return b }), Expect{}, ErrHeaderChecksum, true, 0},
		{"version", mod(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[4:], Version+1)
			resealHeader(b, h.BigEndian)
			return b
		}), Expect{}, ErrVersion, true, 0},
		{"torn last frame", good[:len(good)-100], Expect{}, ErrTornFrame, false, 0},
		{"torn after the commit", append(bytes.Clone(good), make([]byte, 30)...), Expect{}, ErrTornFrame, false, 6},
		{"frames without commit", good[:fo(6)], Expect{}, ErrNoCommit, false, 0},
		{"foreign salts in frames", mod(func(b []byte) []byte { b[16]++; resealHeader(b, h.BigEndian); return b }), Expect{}, ErrForeignSalts, false, 0},
		{"foreign salts in header", good, Expect{Salts: &[2]uint32{h.Salt1 + 1, h.Salt2}}, ErrForeignSalts, false, 6},
		{"stale frame after the log", append(bytes.Clone(good), mod(func(b []byte) []byte { b[fo(2)+8]++; return b })[fo(2):fo(3)]...), Expect{}, ErrForeignSalts, false, 6},
		{"checksum in page", mod(func(b []byte) []byte { b[fo(3)+FrameHeaderSize+500] ^= 0x40; return b }), Expect{}, ErrChecksum, false, 0},
		{"checksum field", mod(func(b []byte) []byte { b[fo(6)+23] ^= 1; return b }), Expect{}, ErrChecksum, false, 0},
		{"page 0", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[fo(1):], 0); return b }), Expect{}, ErrZeroPage, false, 0},
		{"other page size", good, Expect{PageSize: 4096}, ErrOtherPageSize, false, 6},
		{"frame count", good, Expect{Frames: 5}, ErrUnexpected, false, 6},
		{"database size", good, Expect{DBPages: 11}, ErrUnexpected, false, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Validate(bytes.NewReader(c.b), c.e)
			if c.want == nil && err != nil || !errors.Is(err, c.want) {
				t.Errorf("Validate: %v, want %v", err, c.want)
			}
			s, err := Walk(bytes.NewReader(c.b), nil)
			if got := err != nil; got != c.walkErr {
				t.Fatalf("Walk error %v, want one: %v", err, c.walkErr)
			}
			if s.Committed != c.committed {
				t.Errorf("Walk: %d committed frames, want %d (scan %+v)", s.Committed, c.committed, s)
			}
		})
	}
}

func TestValidate_pageBeyondItsTransaction(t *testing.T) {
	// Two transactions written back to back by hand: the second shrinks
	// the database below a page the first wrote (SQLite allows that), and
	// a third frame writes page 9 in a transaction committing 8 pages.
	const ps = 512
	hb, s1, s2 := Header{Version: Version, PageSize: ps, Salt1: 1, Salt2: 2}.encode()
	b := hb[:]
	add := func(no, commit uint32) {
		f := make([]byte, FrameSize(ps))
		binary.BigEndian.PutUint32(f[0:], no)
		binary.BigEndian.PutUint32(f[4:], commit)
		binary.BigEndian.PutUint32(f[8:], 1)
		binary.BigEndian.PutUint32(f[12:], 2)
		s1, s2 = Checksum(false, f[:8], s1, s2)
		s1, s2 = Checksum(false, f[FrameHeaderSize:], s1, s2)
		binary.BigEndian.PutUint32(f[16:], s1)
		binary.BigEndian.PutUint32(f[20:], s2)
		b = append(b, f...)
	}
	add(10, 10)
	add(1, 8)
	if _, err := Validate(bytes.NewReader(b), Expect{}); err != nil {
		t.Fatalf("two transactions: %v", err)
	}
	add(9, 0)
	add(1, 8)
	if s, err := Validate(bytes.NewReader(b), Expect{}); !errors.Is(err, ErrPageBeyondEnd) || s.Committed != 4 {
		t.Errorf("page 9 of 8: %v, scan %+v", err, s)
	}
}

func TestWalk_stop(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	b, _ := writeWAL(t, randomPages(rng, 5, 5, 512), WriteOptions{PageSize: 512, DBPages: 5})
	n := 0
	s, err := Walk(bytes.NewReader(b), func(Frame, []byte) bool { n++; return n < 2 })
	if err != nil || !s.Stopped || s.Frames != 2 || n != 2 || s.EndOffset != FrameOffset(3, 512) {
		t.Errorf("scan %+v, err %v, calls %d", s, err, n)
	}
}

// errReader fails every read.
type errReader struct{}

var errDisk = errors.New("disk")

func (errReader) ReadAt([]byte, int64) (int, error) { return 0, errDisk }

func TestWalk_readError(t *testing.T) {
	if _, err := Walk(errReader{}, nil); !errors.Is(err, errDisk) {
		t.Errorf("got %v, want the read error", err)
	}
}

func TestWriter_sameBytesAsWrite(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	pages := randomPages(rng, 20, 50, 1024)
	salts := &[2]uint32{7, 9}
	o := WriteOptions{PageSize: 1024, DBPages: 50, Salts: salts}
	want, _ := writeWAL(t, pages, o)
	sorted := append([]Page(nil), pages...)
	slices.SortFunc(sorted, func(a, b Page) int { return int(a.No) - int(b.No) })
	var b bytes.Buffer
	wr, err := NewWriter(&b, o)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	for _, p := range sorted {
		copy(buf, p.Data)
		if err := wr.Add(p.No, buf); err != nil {
			t.Fatal(err)
		}
		rng.Read(buf) // Add copied the page: reusing the buffer changes nothing
	}
	if got := wr.Frames(); got != len(pages) {
		t.Errorf("Frames %d, want %d", got, len(pages))
	}
	if err := wr.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("Writer's %d bytes differ from Write's %d", b.Len(), len(want))
	}
	if err := wr.Add(51, buf); !errors.Is(err, ErrCommitted) {
		t.Errorf("Add after Commit: %v, want ErrCommitted", err)
	}
}

func TestWriter_rejects(t *testing.T) {
	o := WriteOptions{PageSize: 512, DBPages: 9}
	page := make([]byte, 512)
	for _, c := range []struct {
		name string
		adds []uint32
		want error
	}{
		{"descending", []uint32{5, 3}, ErrPageOrder},
		{"twice", []uint32{5, 5}, ErrDuplicatePage},
		{"beyond", []uint32{10}, ErrPageBeyondEnd},
		{"zero", []uint32{0}, ErrZeroPage},
		{"commit without pages", nil, ErrNoPages},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			wr, err := NewWriter(&b, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, no := range c.adds {
				if err = wr.Add(no, page); err != nil {
					break
				}
			}
			if err == nil {
				err = wr.Commit()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if err := wr.Commit(); !errors.Is(err, c.want) {
				t.Errorf("Commit after the error: %v, want the same error", err)
			}
			if _, err := Validate(bytes.NewReader(b.Bytes()), Expect{}); err == nil {
				t.Errorf("what a failed Writer wrote validates")
			}
		})
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errDisk
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWrite_writeError(t *testing.T) {
	pages := []Page{{No: 1, Data: make([]byte, 512)}, {No: 2, Data: make([]byte, 512)}}
	for _, n := range []int{0, HeaderSize, HeaderSize + FrameSize(512)} {
		if _, err := Write(&failWriter{n: n}, pages, WriteOptions{PageSize: 512, DBPages: 2}); !errors.Is(err, errDisk) {
			t.Errorf("failing after %d bytes: %v, want the write error", n, err)
		}
	}
}
