// This file tests the request accounting of a connection: however its
// requests end, each is counted out once, and the connection goes.

package fcgi

import (
	"io"
	"net"
	"testing"
	"time"
)

// Every way a request can end leaves the server with no request counted
// against MaxReqs and no connection tracked, and ServeConn returns: a request
// counted out twice would close the connection's done channel twice (a
// panic) or leave the count negative; one never counted out would hang.
func TestRequestAccounting(t *testing.T) {
	params := func(id uint16, name string) []byte {
		b := beginRecord(id, RoleResponder, flagKeepConn)
		return append(b, stream(typeParams, id, nameValuePair11(name, "1"), 100)...)
	}
	partial := append(beginRecord(1, RoleResponder, flagKeepConn), makeRecord(typeParams, 1, nameValuePair11("A", "1"), 0)...)
	abort := makeRecord(typeAbortRequest, 1, nil, 0)
	type step struct {
		send      []byte
		waitStart bool // wait until a handler has started
	}
	tests := []struct {
		name    string
		steps   []step
		maxReqs int
	}{
		{"answered, kept", []step{{send: simpleRequest(1, flagKeepConn, nil, []byte("x"))}}, 0},
		{"answered, not kept", []step{{send: simpleRequest(1, 0, nil, []byte("x"))}}, 0},
		{"params never end", []step{{send: partial}}, 0},
		{"aborted before its handler", []step{{send: append(partial, abort...)}}, 0},
		{"aborted while running", []step{{send: params(1, "HOLD"), waitStart: true}, {send: abort}}, 0},
		{"params too large", []step{{send: params(1, string(make([]byte, 200)))}}, 0},
		{"refused role", []step{{send: beginRecord(1, RoleFilter, flagKeepConn)}}, 0},
		{"over MaxReqs", []step{{send: params(1, "HOLD"), waitStart: true}, {send: params(2, "HOLD")}}, 1},
		{"handler panics", []step{{send: params(1, "PANIC"), waitStart: true}}, 0},
		{"running when the web server closes", []step{{send: params(1, "HOLD"), waitStart: true}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 4)
			srv := &Server{
				MaxReqs:       tt.maxReqs,
				MaxParamsSize: 100,
				Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
					started <- struct{}{}
					if _, ok := r.Params.Get("PANIC"); ok {
						panic("test panic")
					}
					if _, ok := r.Params.Get("HOLD"); ok {
						<-r.Context().Done()
					}
				}),
			}
			server, client := net.Pipe()
			served := make(chan struct{})
			go func() {
				srv.ServeConn(server)
				close(served)
			}()
			go io.Copy(io.Discard, client)
			for _, s := range tt.steps {
				client.Write(s.send)
				if s.waitStart {
					<-started
				}
			}
			client.Close()
			select {
			case <-served:
			case <-time.After(10 * time.Second):
				t.Fatal("ServeConn still running 10 s after the web server closed: a request was never counted out")
			}
			if n := srv.active.Load(); n != 0 {
				t.Errorf("%d requests still counted against MaxReqs", n)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.conns) != 0 {
				t.Errorf("%d connections still tracked", len(srv.conns))
			}
		})
	}
}
