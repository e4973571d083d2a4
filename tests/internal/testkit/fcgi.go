package testkit

import "encoding/binary"

// Record encodes one FastCGI record with padding bytes after its content: the tests write
// records byte by byte, malformed ones included, as a web server or an attacker would.
func Record(typ byte, id uint16, content []byte, padding int) []byte {
	b := []byte{1, typ, byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), byte(padding), 0}
	b = append(b, content...)
	return append(b, make([]byte, padding)...)
}

// Pair encodes a FastCGI name-value pair (one-byte lengths below 128, else four).
func Pair(name, value string) []byte {
	var b []byte
	for _, n := range []int{len(name), len(value)} {
		if n < 128 {
			b = append(b, byte(n))
		} else {
			b = binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
		}
	}
	return append(append(b, name...), value...)
}

// Stream is data cut into records of up to 65535 bytes, ended by an empty one.
func Stream(typ byte, id uint16, data []byte) []byte {
	var b []byte
	for len(data) > 0 {
		n := min(len(data), 65535)
		b = append(b, Record(typ, id, data[:n], 0)...)
		data = data[n:]
	}
	return append(b, Record(typ, id, nil, 0)...)
}
