//go:build linux

// python.go: the one line that says why the interpreter named by --python cannot run the
// workers (pyrunner.Probe, checked before the app is imported and before anything listens).

package main

import (
	"errors"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// pythonError is the line for a failed pyrunner.Probe: "wsgi-fcgi needs Python 3.8 or later;
// /usr/bin/python3.7 is 3.7.16" for a Python too old; for the rest, the line of any refused
// setting, naming --python, its variable, what is accepted and an example.
func pythonError(cfg *Config, err error) string {
	var ue *pyrunner.UnsupportedError
	if errors.As(err, &ue) {
		return "wsgi-fcgi " + err.Error()
	}
	return "wsgi-fcgi: " + cfg.invalid("python", "a Python 3.8 or later interpreter ("+err.Error()+")").Error()
}
