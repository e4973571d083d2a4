//go:build linux

// protocol.go: the frames of the Go ↔ Python channel (see PROTOCOL.md) and the environ encoder.

package pyrunner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Frame types and flags, as PROTOCOL.md numbers them.
type frameType uint8

const (
	frameRequest frameType = 1  // gateway → worker: environ + start of the body
	frameBody    frameType = 2  // gateway → worker: body bytes, in answer to READ
	frameReady   frameType = 16 // worker → gateway: the app is imported
	frameFatal   frameType = 17 // worker → gateway: the app cannot be loaded
	frameStart   frameType = 18 // worker → gateway: status, headers, first body bytes
	frameData    frameType = 19 // worker → gateway: body bytes
	frameRead    frameType = 21 // worker → gateway: wants more request body
	frameAborted frameType = 22 // worker → gateway: a cancelled request ends here

	// Control frames of a preload master (PROTOCOL.md, "Preload").
	frameFork    frameType = 32 // gateway → master: uint32 token; SCM_RIGHTS channel, stack pipe
	frameSpawned frameType = 33 // master → gateway: uint32 token, uint32 pid
	frameExited  frameType = 34 // master → gateway: uint32 pid, int32 wait status
)

func (t frameType) String() string {
	switch t {
	case frameRequest:
		return "REQUEST"
	case frameBody:
		return "BODY"
	case frameReady:
		return "READY"
	case frameFatal:
		return "FATAL"
	case frameStart:
		return "START"
	case frameData:
		return "DATA"
	case frameRead:
		return "READ"
	case frameAborted:
		return "ABORTED"
	case frameFork:
		return "FORK"
	case frameSpawned:
		return "SPAWNED"
	case frameExited:
		return "EXITED"
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

const (
	flagEOF   uint8 = 0x01 // no more request body
	flagEnd   uint8 = 0x02 // last frame of a response
	flagError uint8 = 0x04 // the response failed after START

	frameHeaderLen = 8
	// maxFrame bounds a frame's payload; larger lengths are a protocol error.
	maxFrame = 16 << 20
	// maxHeaderBlock bounds the status and headers of one response.
	maxHeaderBlock = 1 << 20
	// maxInlineBody is how much of the body rides in the REQUEST frame.
	maxInlineBody = 64 << 10
	// maxRead caps one READ: larger asks are answered with at most this much.
	maxRead = 1 << 20
)

// runnerCookie gates the runner: it refuses to start without it (PROTOCOL.md, "The channel").
const runnerCookie = "wsgi-fcgi-runner-v1"

// errProtocol marks a frame the gateway cannot accept from a worker.
var errProtocol = errors.New("protocol violation")

// frameHeader is the decoded 8-byte header of a frame.
type frameHeader struct {
	length uint32
	typ    frameType
	flags  uint8
}

func putFrameHeader(b []byte, length int, typ frameType, flags uint8) {
	binary.LittleEndian.PutUint32(b, uint32(length))
	b[4] = byte(typ)
	b[5] = flags
	b[6], b[7] = 0, 0
}

func parseFrameHeader(b []byte) (frameHeader, error) {
	h := frameHeader{
		length: binary.LittleEndian.Uint32(b),
		typ:    frameType(b[4]),
		flags:  b[5],
	}
	if h.length > maxFrame {
		return h, fmt.Errorf("%w: %v frame of %d bytes", errProtocol, h.typ, h.length)
	}
	return h, nil
}

// Marshal type codes used by the environ encoder (CPython Python/marshal.c).
const (
	marshalDict           = '{'
	marshalNull           = '0'
	marshalShortASCII     = 'z'
	marshalShortASCIIIntn = 'Z'
	marshalASCII          = 'a'
	marshalASCIIIntn      = 'A'
	marshalUnicode        = 'u'
	marshalBinaryFloat    = 'g' // 8 bytes, an IEEE 754 double, little-endian
)

// appendMarshalFloat appends v as a marshal float.
func appendMarshalFloat(b []byte, v float64) []byte {
	b = append(b, marshalBinaryFloat)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// appendMarshalString appends s, read as latin-1, as a marshal str. Keys are interned so that
// the app's string literals find them by identity.
func appendMarshalString[T string | []byte](b []byte, s T, intern bool) []byte {
	high := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			high++
		}
	}
	switch {
	case high == 0 && len(s) < 256:
		code := byte(marshalShortASCII)
		if intern {
			code = marshalShortASCIIIntn
		}
		b = append(b, code, byte(len(s)))
		return append(b, s...)
	case high == 0:
		code := byte(marshalASCII)
		if intern {
			code = marshalASCIIIntn
		}
		b = append(b, code)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	// PEP 3333: each byte becomes the code point of the same value. Marshal's 'u' carries UTF-8,
	// so bytes 0x80-0xFF take their two-byte UTF-8 form.
	b = append(b, marshalUnicode)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)+high))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 {
			b = append(b, c)
		} else {
			b = append(b, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return b
}

// readyInfo is what a READY payload says of the interpreter (PROTOCOL.md, "Frames").
type readyInfo struct {
	version        string // "3.11.2"
	implementation string // sys.implementation.name: "cpython", "pypy"
}

// parseReady reads the python= and implementation= pairs of a READY payload; a key that is
// missing (an older runner, a fake worker) is left empty.
func parseReady(payload []byte) readyInfo {
	var r readyInfo
	for _, kv := range strings.Fields(string(payload)) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "python":
			r.version = v
		case "implementation":
			r.implementation = v
		}
	}
	return r
}
