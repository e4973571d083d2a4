package fcgi

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// FuzzReadRecord feeds arbitrary bytes to a connection's read loop, with a
// handler that reads its params and body and answers. The read loop must
// neither panic nor hang, and what it writes must be well-formed records.
// Allocation is bounded by the package's limits (here 4 KiB of params per
// request, three requests, 256 KiB of body in memory, 64 KiB per record).
func FuzzReadRecord(f *testing.F) {
	f.Add(simpleRequest(1, 0, map[string]string{"REQUEST_METHOD": "GET"}, []byte("body")))
	f.Add(makeRecord(typeGetValues, 0, nameValuePair11("FCGI_MPXS_CONNS", ""), 3))
	f.Add(append(beginRecord(1, RoleFilter, 1), makeRecord(typeAbortRequest, 1, nil, 0)...))
	f.Add(append(beginRecord(2, RoleAuthorizer, 1), stream(typeParams, 2, nameValuePair11("A", "b"), 10)...))
	f.Add(bytes.Join([][]byte{ // FCGI_MPXS_CONNS asked, then two requests interleaved, one aborted
		makeRecord(typeGetValues, 0, nameValuePair11("FCGI_MPXS_CONNS", ""), 0),
		beginRecord(1, RoleResponder, 1), beginRecord(2, RoleResponder, 1),
		stream(typeParams, 1, nil, 1), stream(typeParams, 2, nil, 1),
		makeRecord(typeStdin, 1, []byte("one"), 0), makeRecord(typeAbortRequest, 2, nil, 0),
		makeRecord(typeStdin, 1, nil, 0),
	}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := &fakeConn{r: bytes.NewReader(data)}
		srv := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
			for n, v := range r.Params.All() {
				w.Write(n)
				w.WriteStderr(v)
			}
			io.Copy(w, r.Body)
		}),
			// Small limits, so that inputs reach the refusals too.
			MaxParamsSize: 4096, MaxReqs: 3, MaxSpool: 1 << 20,
		}
		done := make(chan struct{})
		go func() {
			srv.serveRWC(fc, nil)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("read loop hung")
		}
		out := bytes.NewReader(fc.output())
		for {
			rc, err := readRec(out)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("malformed output: %v", err)
			}
			if rc.typ != typeStdout && rc.typ != typeStderr && rc.typ != typeEndRequest &&
				rc.typ != typeGetValuesResult && rc.typ != typeUnknownType {
				t.Fatalf("wrote a %s record", rc.typ)
			}
		}
	})
}

// FuzzParams decodes arbitrary name-value pair streams. Whatever decodes
// must encode back, in the shortest forms, to pairs that decode the same.
func FuzzParams(f *testing.F) {
	f.Add(nameValuePair11("REQUEST_METHOD", "GET"))
	f.Add(nameValuePair44("SCRIPT_NAME", "/app"))
	f.Add([]byte{0x80, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Params
		if err := p.parse(data, nil); err != nil {
			if p.Len() != 0 {
				t.Fatal("pairs left after an error")
			}
			return
		}
		if p.Len() > len(data)/2 {
			t.Fatalf("%d pairs from %d bytes", p.Len(), len(data))
		}
		var enc []byte
		for n, v := range p.All() {
			enc = appendPair(enc, string(n), string(v))
		}
		if len(enc) > len(data) {
			t.Fatalf("re-encoded to %d bytes from %d", len(enc), len(data))
		}
		var q Params
		if err := q.parse(enc, nil); err != nil {
			t.Fatalf("re-encoded pairs do not decode: %v", err)
		}
		if q.Len() != p.Len() {
			t.Fatalf("%d pairs after round trip, want %d", q.Len(), p.Len())
		}
		for i := range p.Len() {
			pn, pv := p.At(i)
			qn, qv := q.At(i)
			if !bytes.Equal(pn, qn) || !bytes.Equal(pv, qv) {
				t.Fatalf("pair %d: %q=%q became %q=%q", i, pn, pv, qn, qv)
			}
		}
		if p.Len() > 0 {
			n, v := p.At(0)
			if got, ok := p.Get(string(n)); !ok || !bytes.Equal(got, v) {
				t.Fatalf("Get(%q) = %q, %v; want the first value %q", n, got, ok, v)
			}
		}
	})
}
