//go:build linux

package yank

import (
	"fmt"
	"math/rand"
)

// model is the table t as the parent knows it: the g of each row, the
// row with id i at index i-1 (ids are 1.. with no gaps: rows are only
// appended, never deleted).
type model []int32

// apply returns the model after b; m is not changed.
func (m model) apply(b batch) model {
	out := make(model, len(m), len(m)+b.n)
	copy(out, m)
	if !b.churn {
		for range b.n {
			out = append(out, int32(b.num))
		}
		return out
	}
	for i, id := 0, b.first; i < b.count; i, id = i+1, id+b.stride {
		out[id-1] = int32(b.num)
	}
	return out
}

// sig is what sigSQL reads from t: enough to tell every state of a phase
// from every other (each batch raises sumG: it writes a number larger
// than any g before it) and a state torn between two from both (rows of
// a grow batch missing, or rows of a churn batch with their old g).
type sig struct {
	rows         int
	sumG, sumGID int64
}

// tableSQL creates the table every yank test writes: g is the batch that
// last wrote a row (0 for rows written outside the batches), which sigSQL
// reads.
const tableSQL = "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB, g INTEGER NOT NULL DEFAULT 0)"

// sigSQL reads a sig; the sqlite3 shell prints it as sig.String does.
const sigSQL = "SELECT count(*), coalesce(sum(g), 0), coalesce(sum(g*id), 0) FROM t"

func (s sig) String() string { return fmt.Sprintf("%d|%d|%d", s.rows, s.sumG, s.sumGID) }

func (m model) sig() sig {
	s := sig{rows: len(m)}
	for i, g := range m {
		s.sumG += int64(g)
		s.sumGID += int64(g) * int64(i+1)
	}
	return s
}

// nextBatch picks the next batch over m: grow or churn, half and half.
// A churn rewrites churnRows rows spread over the whole table.
func (r *runner) nextBatch(m model) batch {
	r.num++
	b := batch{n: r.p.batchRows(), num: r.num}
	if r.batchRng.Intn(2) == 0 || len(m) == 0 {
		return b
	}
	n := min(r.p.churnRows(), len(m))
	b = batch{churn: true, stride: len(m) / n, num: r.num}
	b.first = 1 + r.batchRng.Intn(b.stride)
	b.count = min(n, (len(m)-b.first)/b.stride+1)
	return b
}

// newBatchRng is the generator of a phase's batches, apart from the
// rounds' decisions (runner.rng), so that both replay.
func newBatchRng(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed ^ 0x5eed)) }
