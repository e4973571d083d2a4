// This file tests that the server sees every way a web server closes a
// connection, over unix sockets and TCP.

package fcgi

import (
	"net"
	"testing"
)

// However the web server closes a kept connection, the server sees it and lets the
// connection go, over unix sockets and TCP: an end that came together with data is not
// missed.
func TestServerSeesWebServerClose(t *testing.T) {
	req := simpleRequest(1, flagKeepConn, map[string]string{"REQUEST_METHOD": "GET"}, []byte("hi"))
	tests := []struct {
		name string
		run  func(c net.Conn)
	}{
		{"request and close together", func(c net.Conn) {
			c.Write(req)
			c.Close()
		}},
		{"answered, then stray records and close together", func(c net.Conn) {
			c.Write(req)
			readResponse(t, c, 1)
			c.Write(makeRecord(typeStdin, 1, []byte("late"), 0))
			c.Close()
		}},
		{"request and half-close together, then close", func(c net.Conn) {
			c.Write(req)
			c.(interface{ CloseWrite() error }).CloseWrite()
			// The request may be answered or cut; either way, everything is read before the
			// close, so that a TCP close sends no reset.
			for {
				rc, err := readRec(c)
				if err != nil || rc.typ == typeEndRequest {
					break
				}
			}
			c.Close()
		}},
		{"answered, then close", func(c net.Conn) {
			c.Write(req)
			readResponse(t, c, 1)
			c.Close()
		}},
	}
	for _, network := range []string{"unix", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				ts := startServer(t, network, echoHandler)
				for range 20 {
					tt.run(ts.dial(t))
				}
				waitUntil(t, "the server let go of the 20 connections the web server closed", func() bool {
					ts.Server.mu.Lock()
					defer ts.Server.mu.Unlock()
					return len(ts.Server.conns) == 0
				})
			})
		}
	}
}
