// Command wsgi-fcgi runs a Python WSGI application in long-lived worker processes behind a
// FastCGI web server (Apache mod_proxy_fcgi or mod_fcgid, nginx, Caddy).
//
//	wsgi-fcgi --app mysite.wsgi:application --chdir /srv/mysite --workers 4 --listen 127.0.0.1:9000
//
// With no --app it serves a built-in demo app. Every flag is also the environment variable
// WSGI_FCGI_<NAME>; a flag wins.
//
// It runs on Linux only: the worker pool relies on Linux pipes, prctl(PR_SET_PDEATHSIG) and
// per-thread scheduling calls. Built for another system, the command only says so
// (unsupported.go). The fcgi package builds everywhere.
package main
