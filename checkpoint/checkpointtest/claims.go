// Package checkpointtest helps tests of code built on package checkpoint
// check its journal against faultinject's ordering rules.
package checkpointtest

import (
	"bytes"
	"encoding/binary"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

// DecodeClaims maps the bytes of one journal write to faultinject claims:
// Ready claims the copy holds its final data durably, Done claims the
// database's directory entry is durable. It parses frames by the byte
// table in journal.go (kind at 0, generation at 16), skipping a header
// when the write is a whole new journal.
func DecodeClaims(db string) func([]byte) []faultinject.Claim {
	return func(data []byte) []faultinject.Claim {
		if bytes.HasPrefix(data, []byte(journal.Magic)) {
			data = data[min(len(data), journal.HeaderSize):]
		}
		var out []faultinject.Claim
		for ; len(data) >= journal.RecordSize; data = data[journal.RecordSize:] {
			gen := binary.LittleEndian.Uint64(data[16:])
			switch journal.Kind(data[0]) {
			case journal.Ready:
				out = append(out, faultinject.Claim{Kind: faultinject.ClaimReady, Gen: gen, Path: journal.TempName(db, gen)})
			case journal.Done:
				out = append(out, faultinject.Claim{Kind: faultinject.ClaimDone, Gen: gen, Path: db})
			}
		}
		return out
	}
}

// CheckConfig is the ordering check of a database at db whose main file is
// checkpoint's: never written in place, journal claims decoded.
func CheckConfig(db string) faultinject.CheckConfig {
	return faultinject.CheckConfig{DBPath: db, JournalPath: journal.Name(db), DecodeClaim: DecodeClaims(db)}
}
