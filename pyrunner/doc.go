// Package pyrunner runs Python WSGI apps in long-lived worker processes and hands them
// requests: a pool of workers (static, dynamic or ondemand, php-fpm's modes), each a Python
// process running the embedded runner.py, optionally with several threads, or forked by a
// preload master that imported the app once. It recycles workers (max requests, max RSS),
// enforces per-request timeouts with the stuck worker's Python stack in the log, backs off on
// crash loops, reloads new code without failing a request, and never leaves a worker behind.
//
// The wire between the pool and a worker is specified in PROTOCOL.md. The package knows
// nothing of FastCGI or HTTP: a request is an environ and a body (Request), a response goes to
// a ResponseWriter.
//
// A request can be stopped at every stage: withdrawn from the wait queue or a worker's inbox,
// skipped by the worker when it was written ahead (the cancel board), stopped while it runs
// (the app's iterable closed, an app stuck in a call interrupted by an exception), or its
// worker killed when the app does not stop within Options.CancelGrace.
//
// Files: pool.go (the worker table and its supervisor, shutdown),
// options.go, backoff.go (crash loops), reload.go, dispatch.go (worker states, the wait
// queue, send-ahead), call.go (Do and a request's stages), owner.go (the one goroutine that
// owns a worker's channel), exchange.go (one request's frames), stop.go (its deadlines and
// cancellation), board.go (the cancel board), channel.go (the pipes), interpreter.go (Probe:
// which Python --python is, and whether it is supported), worker.go (a process:
// start, handshake), relay.go (its output to the log: a line per record, a traceback as
// one), preload.go (preload masters), timeout.go (stack dumps),
// request.go, protocol.go, status.go (Snapshot, the one view of the pool's state).
package pyrunner
