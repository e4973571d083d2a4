// forwarded.go: X-Forwarded-* headers, honoured only when the request came through a proxy the
// operator trusts (--forwarded-allow-ips), as gunicorn's forwarded_allow_ips does. Anyone can send
// these headers, so by default they are passed to the app as plain headers and decide nothing.

package gateway

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// TrustedProxies is the set of addresses whose X-Forwarded-* headers are believed.
type TrustedProxies struct {
	all      bool
	prefixes []netip.Prefix
}

// ParseTrustedProxies reads a comma-separated list of IP addresses and CIDR prefixes; "*" trusts
// every address (only for a gateway reachable by the web server alone).
func ParseTrustedProxies(list string) (TrustedProxies, error) {
	var t TrustedProxies
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "*":
			t.all = true
			continue
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return TrustedProxies{}, fmt.Errorf("forwarded-allow-ips: %w", err)
			}
			t.prefixes = append(t.prefixes, p.Masked())
		default:
			a, err := netip.ParseAddr(item)
			if err != nil {
				return TrustedProxies{}, fmt.Errorf("forwarded-allow-ips: %w", err)
			}
			t.prefixes = append(t.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return t, nil
}

// Empty reports whether no address is trusted.
func (t TrustedProxies) Empty() bool { return !t.all && len(t.prefixes) == 0 }

// Contains reports whether addr (text, as REMOTE_ADDR carries it) is trusted.
func (t TrustedProxies) Contains(addr []byte) bool {
	if t.all {
		return true
	}
	a, err := netip.ParseAddr(string(addr))
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwarded applies X-Forwarded-Proto, -For and -Host when REMOTE_ADDR is a trusted proxy:
// the scheme (http or https only), the client's address (the right-most X-Forwarded-For entry
// that is not itself a trusted proxy) and the Host the client asked for.
func (c *cgiRequest) forwarded(t TrustedProxies) {
	if t.Empty() || !t.Contains(c.remoteAddr) {
		return
	}
	switch p := bytes.TrimSpace(lastItem(c.fwdProto)); {
	case bytes.EqualFold(p, []byte("https")):
		c.fwdScheme = "https"
	case bytes.EqualFold(p, []byte("http")):
		c.fwdScheme = "http"
	}
	if len(c.fwdFor) > 0 {
		hops := bytes.Split(c.fwdFor, []byte(","))
		for i := len(hops) - 1; i >= 0; i-- {
			hop := bytes.TrimSpace(hops[i])
			if _, err := netip.ParseAddr(string(hop)); err != nil {
				break // garbage: stop believing the chain here
			}
			c.remoteAddr = hop
			if !t.Contains(hop) {
				break
			}
		}
	}
	if h := bytes.TrimSpace(lastItem(c.fwdHost)); len(h) > 0 && validHost(h) {
		c.host = h
	}
}

// lastItem is the last comma-separated item: the one the nearest proxy added.
func lastItem(b []byte) []byte {
	if i := bytes.LastIndexByte(b, ','); i >= 0 {
		return b[i+1:]
	}
	return b
}

// validHost accepts a host[:port] without characters that could smuggle anything into a URL.
func validHost(h []byte) bool {
	for _, c := range h {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte("/\\?#@\"<>`{}|^"), c) >= 0 {
			return false
		}
	}
	return true
}
