//go:build linux

package main

import (
	"encoding/binary"
	"testing"
)

// record builds a FastCGI record of version v with padding pad.
func record(v, typ byte, content string, pad int) []byte {
	b := []byte{v, typ, 0, 1, 0, 0, byte(pad), 0}
	binary.BigEndian.PutUint16(b[4:], uint16(len(content)))
	b = append(b, content...)
	return append(b, make([]byte, pad)...)
}

// TestEndWatch: a response is complete only once FCGI_END_REQUEST has been read, whatever the
// reads' sizes; a record header of another version (the gateway's cut) or an end of the
// connection before it is not.
func TestEndWatch(t *testing.T) {
	const stdout, stderr, end = 6, 7, 3
	head := record(1, stdout, "Status: 200 OK\r\n\r\npartial", 3)
	cases := []struct {
		name   string
		stream []byte
		want   bool
	}{
		{"ended", cat(head, record(1, stdout, "", 0), record(1, end, "\x00\x00\x00\x00\x00\x00\x00\x00", 0)), true},
		{"END_REQUEST bytes inside a record are content", cat(record(1, stdout, "\x01\x03\x00\x01\x00\x08\x00\x00", 0)), false},
		{"connection ended first", head, false},
		{"cut by the gateway", cat(head, record(1, stderr, "fcgi: response aborted", 0), make([]byte, 8)), false},
		{"half a header", cat(head, []byte{1, end, 0}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for size := 1; size <= len(tc.stream); size++ {
				e := &endWatch{}
				for b := tc.stream; len(b) > 0; {
					k := min(size, len(b))
					e.scan(b[:k])
					b = b[k:]
				}
				if got := e.complete(); got != tc.want {
					t.Fatalf("read %d bytes at a time: complete %v, want %v", size, got, tc.want)
				}
			}
		})
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
