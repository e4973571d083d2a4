// Command fcgiconst answers every FastCGI request with the same 13-byte body ("Hello, world!",
// as the bench's hello app), without Python: the cost of the FastCGI side alone. It runs on
// wsgi-fcgi's fcgi package, or with -impl net/http/fcgi on Go's standard one, so that both
// can be put under the same load and compared.
//
//	go run ./tests/bench/fcgiconst -listen /tmp/const.sock                        # fcgi package
//	go run ./tests/bench/fcgiconst -listen /tmp/const.sock -impl net/http/fcgi    # stdlib
//
// Any FastCGI load generator can drive it (the peer benchmark's fcgiload, for one). Like the
// gateway, it runs with Go's default GOMAXPROCS.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/signal"
	"syscall"

	wfcgi "github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

var body = []byte("Hello, world!")

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "host:port, a unix socket path, or unix:PATH")
	impl := flag.String("impl", "wsgi-fcgi", "wsgi-fcgi (this project's fcgi package) or net/http/fcgi")
	flag.Parse()
	ln, err := wfcgi.Listen(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fcgiconst:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stopped := make(chan struct{})
	go func() {
		<-sig
		close(stopped)
		ln.Close()
	}()
	switch *impl {
	case "wsgi-fcgi":
		err = serveOwn(ln)
	case "net/http/fcgi":
		err = fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "13")
			w.Write(body)
		}))
	default:
		err = fmt.Errorf("-impl %q: want wsgi-fcgi or net/http/fcgi", *impl)
	}
	select {
	case <-stopped: // the listener was closed on purpose
	default:
		if err != nil {
			fmt.Fprintln(os.Stderr, "fcgiconst:", err)
			os.Exit(1)
		}
	}
}

// reply is the whole CGI response: what the hello app's worker would produce.
var reply = []byte("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!")

func serveOwn(ln net.Listener) error {
	srv := &wfcgi.Server{Handler: wfcgi.HandlerFunc(func(w *wfcgi.ResponseWriter, _ *wfcgi.Request) {
		w.Write(reply)
	})}
	return srv.Serve(ln)
}
