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
// Files: pool.go (options, the worker table and its supervisor, reload, shutdown),
// handout.go (worker states, acquire and release), worker.go (a process: start, handshake,
// log relay), preload.go (preload masters), exchange.go (one request's frames), timeout.go
// (deadlines and stack dumps), request.go, protocol.go.
package pyrunner
