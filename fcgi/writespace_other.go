//go:build !linux

// writespace_other.go: without epoll, connections keep the runtime's registration
// (writespace.go).

package fcgi

import "errors"

// runtimePoller stands in for the Linux one: it finds nothing.
type runtimePoller struct{}

// registration stands in for the Linux one.
type registration struct{}

var errNoEpoll = errors.New("fcgi: no epoll on this system")

func (p *runtimePoller) find(fd int) (registration, error) { return registration{}, errNoEpoll }

func (reg registration) set(fd int, out bool) error { return errNoEpoll }
