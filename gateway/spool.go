// spool.go: bodies that arrive without a usable length are read whole before the app runs,
// in memory up to a bound and then in a temp file, so the app gets a true CONTENT_LENGTH.

package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// errTooLarge: the body grew past Options.MaxBody while it was spooled.
var errTooLarge = errors.New("request body too large")

// spooled is a body read in full: a memory part, then an optional temp file.
type spooled struct {
	mem  *bytes.Reader
	file *os.File
	size int64
}

// spool reads body to its end. At most memLimit bytes stay in memory; the rest goes to an
// unlinked temp file in dir. maxBody > 0 bounds the total.
func spool(body io.Reader, memLimit int, maxBody int64, dir string) (*spooled, error) {
	limit := int64(-1)
	if maxBody > 0 {
		limit = maxBody
	}
	var mem bytes.Buffer
	n, err := io.Copy(&mem, io.LimitReader(body, int64(memLimit)))
	if err != nil {
		return nil, fmt.Errorf("spool body: %w", err)
	}
	sp := &spooled{size: n}
	if limit >= 0 && n > limit {
		return nil, errTooLarge
	}
	if n == int64(memLimit) {
		f, err := os.CreateTemp(dir, "wsgi-fcgi-body-")
		if err != nil {
			return nil, fmt.Errorf("spool body: %w", err)
		}
		os.Remove(f.Name()) // unlinked: the space is freed however the process ends
		src := body
		if limit >= 0 {
			src = io.LimitReader(body, limit-n+1)
		}
		m, err := io.Copy(f, src)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("spool body to %s: %w", dir, err)
		}
		sp.size += m
		if limit >= 0 && sp.size > limit {
			f.Close()
			return nil, errTooLarge
		}
		sp.file = f
	}
	sp.mem = bytes.NewReader(mem.Bytes())
	return sp, nil
}

// Read reads the memory part, then the file.
func (s *spooled) Read(p []byte) (int, error) {
	if s.mem.Len() > 0 {
		return s.mem.Read(p)
	}
	if s.file == nil {
		return 0, io.EOF
	}
	return s.file.Read(p)
}

// Buffered is what can be read without touching the file.
func (s *spooled) Buffered() int { return s.mem.Len() }

// Close frees the temp file.
func (s *spooled) Close() {
	if s.file != nil {
		s.file.Close()
	}
}
