// This file holds Params, the request's FCGI_PARAMS stream decoded in place:
// one byte buffer and an index of offsets, no map and no string per pair.

package fcgi

import (
	"iter"
	"sync"
)

// Params is the name-value pairs of a request's FCGI_PARAMS stream, in the
// order the web server sent them, as raw bytes. Names may repeat; Get returns
// the first.
//
// The slices returned by At, Get and All point into a buffer that is reused
// once ServeFCGI returns: copy what must outlive the handler.
type Params struct {
	buf []byte
	idx []pairIndex
	pb  *paramBuf // owner of buf and idx, returned to the pool by release
}

// pairIndex locates one pair in Params.buf: the name starts at off and the
// value follows it.
type pairIndex struct {
	off, nameLen, valueLen uint32
}

// Len returns the number of pairs.
func (p *Params) Len() int { return len(p.idx) }

// At returns the i'th pair. It panics if i is out of range, like a slice.
func (p *Params) At(i int) (name, value []byte) {
	e := p.idx[i]
	n := e.off + e.nameLen
	v := n + e.valueLen
	return p.buf[e.off:n:n], p.buf[n:v:v]
}

// Get returns the value of the first pair called name.
func (p *Params) Get(name string) (value []byte, ok bool) {
	for _, e := range p.idx {
		n := e.off + e.nameLen
		if string(p.buf[e.off:n]) == name {
			v := n + e.valueLen
			return p.buf[n:v:v], true
		}
	}
	return nil, false
}

// All iterates over the pairs in wire order.
func (p *Params) All() iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		for i := range p.idx {
			if !yield(p.At(i)) {
				return
			}
		}
	}
}

// parse indexes the name-value pairs in buf. On error p is left empty.
func (p *Params) parse(buf []byte, idx []pairIndex) error {
	idx = idx[:0]
	for off := 0; off < len(buf); {
		noff, nl, vl, size, err := pairAt(buf[off:])
		if err != nil {
			p.buf, p.idx = nil, idx[:0]
			return err
		}
		idx = append(idx, pairIndex{uint32(off + noff), nl, vl})
		off += size
	}
	p.buf, p.idx = buf, idx
	return nil
}

// paramBuf is the pooled storage behind a Params.
type paramBuf struct {
	b   []byte
	idx []pairIndex
}

const (
	paramBufInitial = 4 << 10  // nginx's stock fastcgi_params are ~1 KiB
	paramBufKeepMax = 64 << 10 // larger buffers are left to the GC
)

var paramBufPool = sync.Pool{New: func() any {
	return &paramBuf{b: make([]byte, 0, paramBufInitial), idx: make([]pairIndex, 0, 32)}
}}

func getParamBuf() *paramBuf { return paramBufPool.Get().(*paramBuf) }

func putParamBuf(pb *paramBuf) {
	if cap(pb.b) > paramBufKeepMax {
		return
	}
	pb.b, pb.idx = pb.b[:0], pb.idx[:0]
	paramBufPool.Put(pb)
}

// release returns the storage to the pool and empties p.
func (p *Params) release() {
	if p.pb != nil {
		putParamBuf(p.pb)
	}
	*p = Params{}
}
