// This file defines the FastCGI 1.0 wire format: the record header, the
// record types, and the name-value pair encoding used by FCGI_PARAMS and
// FCGI_GET_VALUES.

package fcgi

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// recType is the type byte of a record header.
type recType uint8

const (
	typeBeginRequest    recType = 1
	typeAbortRequest    recType = 2
	typeEndRequest      recType = 3
	typeParams          recType = 4
	typeStdin           recType = 5
	typeStdout          recType = 6
	typeStderr          recType = 7
	typeData            recType = 8
	typeGetValues       recType = 9
	typeGetValuesResult recType = 10
	typeUnknownType     recType = 11
)

var recTypeNames = [...]string{
	typeBeginRequest:    "FCGI_BEGIN_REQUEST",
	typeAbortRequest:    "FCGI_ABORT_REQUEST",
	typeEndRequest:      "FCGI_END_REQUEST",
	typeParams:          "FCGI_PARAMS",
	typeStdin:           "FCGI_STDIN",
	typeStdout:          "FCGI_STDOUT",
	typeStderr:          "FCGI_STDERR",
	typeData:            "FCGI_DATA",
	typeGetValues:       "FCGI_GET_VALUES",
	typeGetValuesResult: "FCGI_GET_VALUES_RESULT",
	typeUnknownType:     "FCGI_UNKNOWN_TYPE",
}

func (t recType) String() string {
	if int(t) < len(recTypeNames) && recTypeNames[t] != "" {
		return recTypeNames[t]
	}
	return "record type " + strconv.Itoa(int(t))
}

// protocolStatus is the protocolStatus byte of FCGI_END_REQUEST.
type protocolStatus uint8

const (
	statusRequestComplete protocolStatus = 0
	statusCantMultiplex   protocolStatus = 1
	statusOverloaded      protocolStatus = 2
	statusUnknownRole     protocolStatus = 3
)

const (
	version1 = 1 // FCGI_VERSION_1, the only version there is

	headerLen     = 8     // FCGI_HEADER_LEN
	maxContent    = 65535 // "contentData: Between 0 and 65535 bytes of data"
	nullRequestID = 0     // FCGI_NULL_REQUEST_ID: management records

	// flagKeepConn is FCGI_KEEP_CONN in FCGI_BEGIN_REQUEST's flags.
	flagKeepConn = 1

	beginBodyLen = 8 // FCGI_BeginRequestBody
	endBodyLen   = 8 // FCGI_EndRequestBody
)

// header is a record header as it sits on the wire, minus the reserved byte.
type header struct {
	version    uint8
	typ        recType
	id         uint16
	contentLen uint16
	paddingLen uint8
}

// decode fills h from the first headerLen bytes of b.
func (h *header) decode(b []byte) {
	_ = b[headerLen-1]
	h.version = b[0]
	h.typ = recType(b[1])
	h.id = binary.BigEndian.Uint16(b[2:])
	h.contentLen = binary.BigEndian.Uint16(b[4:])
	h.paddingLen = b[6]
}

// putHeader writes an unpadded record header into b[:headerLen].
func putHeader(b []byte, t recType, id uint16, contentLen int) {
	_ = b[headerLen-1]
	b[0] = version1
	b[1] = byte(t)
	binary.BigEndian.PutUint16(b[2:], id)
	binary.BigEndian.PutUint16(b[4:], uint16(contentLen))
	b[6] = 0 // no padding: "We recommend" alignment, nothing requires it
	b[7] = 0
}

// appendHeader appends an unpadded record header.
func appendHeader(dst []byte, t recType, id uint16, contentLen int) []byte {
	var h [headerLen]byte
	putHeader(h[:], t, id, contentLen)
	return append(dst, h[:]...)
}

// appendEndRequest appends a whole FCGI_END_REQUEST record.
func appendEndRequest(dst []byte, id uint16, appStatus uint32, st protocolStatus) []byte {
	dst = appendHeader(dst, typeEndRequest, id, endBodyLen)
	var body [endBodyLen]byte
	binary.BigEndian.PutUint32(body[:], appStatus)
	body[4] = byte(st)
	return append(dst, body[:]...)
}

// appendUnknownType appends {FCGI_UNKNOWN_TYPE, 0, {t}}.
func appendUnknownType(dst []byte, t recType) []byte {
	dst = appendHeader(dst, typeUnknownType, nullRequestID, 8)
	var body [8]byte
	body[0] = byte(t)
	return append(dst, body[:]...)
}

// Name-value pairs (spec 3.4): "Lengths of 127 bytes and less can be encoded
// in one byte, while longer lengths are always encoded in four bytes". A
// four-byte length has the high bit of its first byte set; the remaining 31
// bits are the length.

// errMalformedPair is returned for a name-value pair stream that ends inside
// a pair.
var errMalformedPair = errors.New("malformed name-value pair")

// appendPairLen appends n in the 1- or 4-byte form.
func appendPairLen(dst []byte, n int) []byte {
	if n <= 127 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// appendPair appends one name-value pair.
func appendPair(dst []byte, name, value string) []byte {
	dst = appendPairLen(dst, len(name))
	dst = appendPairLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

// readPairLen decodes one length at the start of b and returns it with the
// number of bytes it took; size is 0 if b is too short.
func readPairLen(b []byte) (n uint32, size int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0]>>7 == 0 {
		return uint32(b[0]), 1
	}
	if len(b) < 4 {
		return 0, 0
	}
	return binary.BigEndian.Uint32(b) &^ (1 << 31), 4
}

// pairAt decodes the pair at the start of b. It returns the offset of the
// name in b, the two lengths, and the total size of the pair.
func pairAt(b []byte) (off int, nameLen, valueLen uint32, size int, err error) {
	nameLen, n1 := readPairLen(b)
	if n1 == 0 {
		return 0, 0, 0, 0, errMalformedPair
	}
	valueLen, n2 := readPairLen(b[n1:])
	if n2 == 0 {
		return 0, 0, 0, 0, errMalformedPair
	}
	off = n1 + n2
	// uint64: two 31-bit lengths cannot overflow it, on any platform.
	if uint64(nameLen)+uint64(valueLen) > uint64(len(b)-off) {
		return 0, 0, 0, 0, errMalformedPair
	}
	return off, nameLen, valueLen, off + int(nameLen) + int(valueLen), nil
}
