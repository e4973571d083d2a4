// This file holds a connection's refusals and limits: which new request is
// admitted, how a refused one is answered, and what FCGI_GET_VALUES
// advertises.

package fcgi

import (
	"fmt"
	"strconv"
)

// admit checks a new request against the roles served and the limits. An
// admitted request is counted in (countIn); a refused one has been answered,
// and err is set only when the connection must end.
func (c *conn) admit(id uint16, role Role, keepConn bool) (admitted bool, err error) {
	switch {
	case role != RoleResponder && role != RoleAuthorizer:
		// "FCGI_UNKNOWN_ROLE: rejecting a new request. This happens when
		// the Web server has specified a role that is unknown to the
		// application." Filter is known, but not served.
		return false, c.refuse(id, keepConn, statusUnknownRole, fmt.Errorf("%w: %v (request %d)", ErrUnknownRole, role, id))
	case c.overloaded:
		// "FCGI_OVERLOADED: rejecting a new request. This happens when the
		// application runs out of some resource".
		return false, c.refuse(id, keepConn, statusOverloaded, fmt.Errorf("%w: over %d (request %d refused)", ErrTooManyConns, c.srv.maxConns(), id))
	case c.srv.NoMultiplex && c.open.Load() > 0:
		// "FCGI_CANT_MPX_CONN: rejecting a new request. This happens when a
		// Web server sends concurrent requests over one connection to an
		// application that is designed to process one request at a time per
		// connection."
		return false, c.refuse(id, keepConn, statusCantMultiplex, fmt.Errorf("%w: request %d while another is in progress", ErrCantMultiplex, id))
	case !c.countIn():
		return false, c.refuse(id, keepConn, statusOverloaded, fmt.Errorf("%w: over %d (request %d refused)", ErrTooManyRequests, c.srv.maxReqs(), id))
	}
	return true, nil
}

// refuse answers a new request with FCGI_END_REQUEST and protocol status
// st; its other records are ignored until the id is begun again. A
// connection over MaxConns, or one whose request did not ask
// FCGI_KEEP_CONN, is closed after the answer.
func (c *conn) refuse(id uint16, keepConn bool, st protocolStatus, reason error) error {
	c.reqs[id] = ignoreAll
	c.srv.refused(c.remote, reason)
	if err := c.write(appendEndRequest(c.small[:0], id, 0, st)); err != nil {
		return err
	}
	if !keepConn || c.overloaded {
		c.drain()
	}
	return nil
}

// drain closes the connection after what was written: the read loop
// discards input until the web server closes its side.
func (c *conn) drain() {
	c.draining = true
	c.closeAfterResponse(false)
}

// paramsTooLarge answers a request whose params outgrew the limit with a
// CGI 431 response of the package's own; its handler never runs and its
// remaining records are ignored.
func (c *conn) paramsTooLarge(req *request, n, limit int) error {
	if err := c.discard(n); err != nil {
		return err
	}
	id := req.r.ID
	c.drop(req)
	c.srv.refused(c.remote, fmt.Errorf("%w: request %d sent more than %d bytes", ErrParamsTooLarge, id, limit))
	const msg = "431 Request Header Fields Too Large\n"
	const head = "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	b := appendHeader(nil, typeStdout, id, len(head)+len(msg))
	b = append(append(b, head...), msg...)
	b = appendHeader(b, typeStdout, id, 0)
	b = appendEndRequest(b, id, 0, statusRequestComplete)
	c.deactivate()
	err := c.write(b)
	c.release()
	if err != nil {
		return err
	}
	if !req.r.KeepConn {
		c.drain()
	}
	return nil
}

// getValues answers FCGI_GET_VALUES with the limits in force. "If the
// application doesn't understand a variable name that was included in the
// query, it omits that name from the response."
func (c *conn) getValues(n int) error {
	q := make([]byte, n)
	if err := c.readFull(q); err != nil {
		return err
	}
	out := make([]byte, headerLen, 128)
	var seen [3]bool
	for len(q) > 0 {
		off, nl, _, size, err := pairAt(q)
		if err != nil {
			return fmt.Errorf("%w: FCGI_GET_VALUES: %w", ErrProtocol, err)
		}
		name := q[off : off+int(nl)]
		q = q[size:]
		var i int
		var v int
		switch string(name) {
		case "FCGI_MAX_CONNS":
			i, v = 0, c.srv.maxConns()
		case "FCGI_MAX_REQS":
			i, v = 1, c.srv.maxReqs()
		case "FCGI_MPXS_CONNS":
			i, v = 2, 1 // requests on one connection run concurrently
			if c.srv.NoMultiplex {
				v = 0
			} else {
				c.mpxPeer = true // a client that asks may well multiplex
			}
		default:
			continue
		}
		if !seen[i] {
			seen[i] = true
			out = appendPair(out, string(name), strconv.Itoa(v))
		}
	}
	putHeader(out, typeGetValuesResult, nullRequestID, len(out)-headerLen)
	return c.write(out)
}

// unknownType answers a record type this package does not take: "When an
// application receives a management record whose type T it does not
// understand, the application responds with {FCGI_UNKNOWN_TYPE, 0, {T}}."
// Application records of odd types get the same answer.
func (c *conn) unknownType(t recType, n int) error {
	if err := c.discard(n); err != nil {
		return err
	}
	return c.write(appendUnknownType(c.small[:0], t))
}
