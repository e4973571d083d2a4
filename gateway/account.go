// account.go: what the gateway records about each request it answered, once it is over:
// the access log line and the request metrics, from one reading of the clock.

package gateway

import "time"

// account writes st's access log line and records its metrics; end is when its response
// ended.
func (g *Gateway) account(st *requestState, end time.Time) {
	o := &st.obs
	e := accessEntry{
		start:     o.arrived,
		id:        o.id,
		remote:    st.c.remoteAddr,
		host:      st.c.host,
		uri:       st.c.requestURI,
		status:    st.status,
		bytesIn:   o.bytesIn,
		bytesOut:  st.bytes,
		workerPID: st.req.WorkerPID,
		total:     end.Sub(o.queueStart),
	}
	cancelled := false
	if e.status == 0 {
		e.status = 499 // the response never started: the web server went away (nginx's code)
		cancelled = true
	}
	if o.dispatched {
		e.hasQueue = true
		if started := st.req.Started; !started.IsZero() {
			e.queueWait, e.appTime, e.hasApp = started.Sub(o.queueStart), end.Sub(started), true
		} else {
			e.queueWait = end.Sub(o.queueStart)
		}
		e.queueWait = max(e.queueWait, 0)
	}
	if g.opts.AccessLog != nil {
		if p := st.params; p != nil {
			e.user, _ = p.Get("REMOTE_USER")
			e.method, _ = p.Get("REQUEST_METHOD")
			e.protocol, _ = p.Get("SERVER_PROTOCOL")
			e.referer, _ = p.Get("HTTP_REFERER")
			e.userAgent, _ = p.Get("HTTP_USER_AGENT")
			if len(e.host) == 0 {
				e.host, _ = p.Get("SERVER_NAME")
			}
		}
		g.opts.AccessLog.log(&e)
	}
	if g.metrics != nil && !o.ownPage {
		g.metrics.observe(&e, cancelled)
	}
}
