package journal

import (
	"hash"
	"hash/crc64"
)

// Database checksums (the Sum field of records) are CRC-64 with the ECMA
// polynomial, reflected, initial value and final XOR all ones: the
// CRC-64/XZ of xz and Go's hash/crc64 with crc64.ECMA. Check value:
// Sum([]byte("123456789")) == 0x995dc9bbdf1939fa.
//
// Why: it streams (a copy can be summed while it is written), it runs at
// about 2 GB/s, well above what removable drives deliver, and it is in
// the standard library. It guards against accidents (torn copies, stale
// or garbage sectors, a half-renamed pair of files on FAT), not against
// an adversary: a collision between two different databases of the same
// size has probability about 2^-64.
var sumTable = crc64.MakeTable(crc64.ECMA)

// NewSum returns a streaming database checksum: write the file's bytes in
// order, then read Sum64.
func NewSum() hash.Hash64 { return crc64.New(sumTable) }

// Sum returns the database checksum of b, as NewSum would.
func Sum(b []byte) uint64 { return crc64.Checksum(b, sumTable) }
