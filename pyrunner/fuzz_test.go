//go:build linux

package pyrunner

import (
	"bytes"
	"testing"
)

// FuzzParseHeaderBlock: whatever a worker sends as the header block of START, the gateway
// either refuses it or passes on a valid status and fields that cannot inject a header: no
// CR or LF anywhere, every name an RFC 9110 token and not Status.
func FuzzParseHeaderBlock(f *testing.F) {
	for _, seed := range []string{
		"200 OK",
		"200 OK\x00Content-Type\x00text/plain",
		"404 Not Found\x00X-A\x00a\x00X-B\x00",
		"200 OK\x00X-Evil\x00a\r\nSet-Cookie: b",
		"200\x00Status\x00500",
		"20 X",
		"",
		"\x00\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		status, h, err := parseHeaderBlock(block)
		if err != nil {
			return
		}
		if !validStatus(status) {
			t.Fatalf("accepted status %q", status)
		}
		n := 0
		h.Each(func(name, value []byte) {
			n++
			if !validToken(name) || bytes.EqualFold(name, []byte("status")) {
				t.Fatalf("accepted header name %q", name)
			}
			if bytes.ContainsAny(value, "\r\n") {
				t.Fatalf("accepted header value %q", value)
			}
		})
		if want := bytes.Count(h.block, []byte{0})/2 + 1; len(h.block) > 0 && n != want {
			t.Fatalf("Each gave %d fields of a block of %d", n, want)
		}
	})
}

// FuzzParseFrameHeader: a frame header is accepted only with a length within the limit.
func FuzzParseFrameHeader(f *testing.F) {
	f.Add([]byte{8, 0, 0, 0, byte(frameStart), flagEnd, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, byte(frameData), 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < frameHeaderLen {
			return
		}
		h, err := parseFrameHeader(b)
		if err == nil && h.length > maxFrame {
			t.Fatalf("accepted a frame of %d bytes", h.length)
		}
	})
}
