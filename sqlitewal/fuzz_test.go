package sqlitewal

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// FuzzWalk feeds arbitrary bytes to Walk and Validate: no panic, no hang,
// and answers that agree with each other and with the format.
func FuzzWalk(f *testing.F) {
	rng := rand.New(rand.NewSource(4))
	for _, ps := range []int{512, 1024} {
		var b bytes.Buffer
		if _, err := Write(&b, randomPages(rng, 3, 4, ps), WriteOptions{PageSize: ps, DBPages: 4}); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		f.Add(b.Bytes()[:b.Len()-7])
		var be bytes.Buffer
		if _, err := Write(&be, randomPages(rng, 2, 2, ps), WriteOptions{PageSize: ps, DBPages: 2, Order: BigEndian}); err != nil {
			f.Fatal(err)
		}
		f.Add(be.Bytes())
	}
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Walk(bytes.NewReader(b), nil)
		if err != nil {
			if s.Frames != 0 {
				t.Fatalf("header error %v with %d frames", err, s.Frames)
			}
			if _, verr := Validate(bytes.NewReader(b), Expect{}); verr == nil {
				t.Fatalf("Validate accepted what Walk refused: %v", err)
			}
			return
		}
		if s.Committed > s.Frames || (s.Committed == 0) != (s.DBPages == 0) {
			t.Fatalf("inconsistent scan %+v", s)
		}
		if end := FileSize(s.Frames, s.Header.PageSize); end != s.EndOffset || end > int64(len(b)) {
			t.Fatalf("end offset %d, %d frames of %d end at %d, file %d", s.EndOffset, s.Frames, s.Header.PageSize, end, len(b))
		}
		if (s.End == nil) != (s.EndOffset == int64(len(b))) {
			t.Fatalf("end %v at %d of %d bytes", s.End, s.EndOffset, len(b))
		}
		vs, verr := Validate(bytes.NewReader(b), Expect{})
		if verr == nil && (s.Committed != s.Frames || s.End != nil || s.Frames == 0) {
			t.Fatalf("Validate accepted a log SQLite would not replay whole: %+v", s)
		}
		if vs.Frames != s.Frames {
			t.Fatalf("Validate saw %d frames, Walk %d", vs.Frames, s.Frames)
		}
		if verr == nil {
			// A valid log round-trips: its pages written again with its
			// header's salts, sequence and order give the same bytes
			// when each transaction is one frame per page, ascending.
			var pages []Page
			ascending, commits := true, 0
			Walk(bytes.NewReader(b), func(f Frame, page []byte) bool {
				if f.Commit != 0 {
					commits++
				}
				if len(pages) > 0 && pages[len(pages)-1].No >= f.Page {
					ascending = false
				}
				pages = append(pages, Page{No: f.Page, Data: bytes.Clone(page)})
				return true
			})
			if s.Committed != len(pages) || !ascending || commits != 1 {
				return
			}
			ord := LittleEndian
			if s.Header.BigEndian {
				ord = BigEndian
			}
			var w bytes.Buffer
			_, err := Write(&w, pages, WriteOptions{PageSize: s.Header.PageSize, DBPages: s.DBPages,
				CheckpointSeq: s.Header.CheckpointSeq, Salts: &[2]uint32{s.Header.Salt1, s.Header.Salt2}, Order: ord})
			if errors.Is(err, ErrPageBeyondEnd) {
				t.Fatalf("Validate accepted a page beyond the end: %v", err)
			}
			if err == nil && !bytes.Equal(w.Bytes(), b) {
				t.Fatalf("rewriting a valid single-transaction log gave other bytes")
			}
		}
	})
}
