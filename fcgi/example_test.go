package fcgi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

// A responder that echoes the request method and body size, served on a
// unix socket until SIGTERM, then drained.
func Example() {
	srv := &fcgi.Server{
		Handler: fcgi.HandlerFunc(func(w *fcgi.ResponseWriter, r *fcgi.Request) {
			method, _ := r.Params.Get("REQUEST_METHOD")
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				return // aborted, or the web server went away
			}
			fmt.Fprintf(w, "Content-Type: text/plain\r\n\r\n%s with %d bytes\n", method, n)
		}),
		ConnError: func(_ net.Addr, err error) { fmt.Fprintln(os.Stderr, err) },
	}
	l, err := fcgi.Listen("unix:/run/app/fcgi.sock")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(l); !errors.Is(err, fcgi.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
	}
}
