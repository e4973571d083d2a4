//go:build integration

// The deterministic byte pattern of /download and of the tests' uploads; tests/apps/flaskapp.py
// produces the same bytes.

package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
)

const chunkSize = 1 << 20

// patternBase is bytes(range(256)) * 4096: one chunk before its number is written in.
var patternBase = func() []byte {
	b := make([]byte, chunkSize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// patternReader produces size bytes of the pattern /download sends, without holding them.
type patternReader struct{ off, size int64 }

func newPattern(size int64) *patternReader { return &patternReader{size: size} }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	k, in := r.off/chunkSize, r.off%chunkSize
	n := min(int64(len(p)), r.size-r.off, chunkSize-in)
	copy(p[:n], patternBase[in:in+n])
	for i := in; i < 8 && i < in+n; i++ { // chunk k starts with k, 8 bytes little-endian
		p[i-in] = byte(uint64(k) >> (8 * i))
	}
	r.off += n
	return int(n), nil
}

// patternSHA256 is the hex SHA-256 of the first size bytes of the pattern.
func patternSHA256(size int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, newPattern(size)); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
