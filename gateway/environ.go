// environ.go: the PEP 3333 environ, built from the CGI params a web server sends, as pure
// functions over the params.

package gateway

import (
	"bytes"
	"strconv"
)

// cgiRequest holds the params the gateway interprets; the rest pass through unchanged.
type cgiRequest struct {
	scriptName, pathInfo  []byte
	requestURI, docURI    []byte
	scriptFilename        []byte
	contentLength         []byte
	hasContentLength      bool
	https, requestScheme  []byte
	transferEncodingValue []byte
	host                  []byte // HTTP_HOST, held: X-Forwarded-Host may replace it
	remoteAddr            []byte // REMOTE_ADDR, held: X-Forwarded-For may replace it
	hasRemoteAddr         bool
	fwdProto, fwdFor      []byte
	fwdHost               []byte
	fwdScheme             string // X-Forwarded-Proto from a trusted proxy
}

// paramAction says what happens to one param when the environ is built.
type paramAction uint8

const (
	passParam paramAction = iota // copy to the environ as it is
	dropParam                    // never reaches the app
	heldParam                    // interpreted, written later by the gateway
)

// classify decides the fate of one param and records the ones the gateway interprets.
func (c *cgiRequest) classify(name, value []byte) paramAction {
	switch string(name) {
	case "HTTP_PROXY":
		// httpoxy (CVE-2016-5385): a client's "Proxy:" header must not look like the
		// HTTP_PROXY variable that HTTP libraries read from the environment.
		return dropParam
	case "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH":
		// nginx passes the client's Content-Type and Content-Length headers on as these, beside
		// CONTENT_TYPE and CONTENT_LENGTH. PEP 3333 (as CGI, RFC 3875 section 4.1.18) has the
		// headers only in their CGI names, and wsgiref.validate rejects an environ with both.
		return dropParam
	case "SCRIPT_NAME":
		c.scriptName = value
		return heldParam
	case "PATH_INFO":
		c.pathInfo = value
		return heldParam
	case "CONTENT_LENGTH":
		c.contentLength, c.hasContentLength = value, true
		return heldParam
	case "HTTP_TRANSFER_ENCODING":
		c.transferEncodingValue = value
		return heldParam
	case "REQUEST_URI":
		c.requestURI = value
	case "DOCUMENT_URI":
		c.docURI = value
	case "SCRIPT_FILENAME":
		c.scriptFilename = value
	case "HTTP_HOST":
		c.host = value
		return heldParam
	case "REMOTE_ADDR":
		c.remoteAddr, c.hasRemoteAddr = value, true
		return heldParam
	case "HTTP_X_FORWARDED_PROTO":
		c.fwdProto = value
	case "HTTP_X_FORWARDED_FOR":
		c.fwdFor = value
	case "HTTP_X_FORWARDED_HOST":
		c.fwdHost = value
	case "HTTPS":
		c.https = value
	case "REQUEST_SCHEME":
		c.requestScheme = value
	}
	return passParam
}

// urlScheme is wsgi.url_scheme: from HTTPS (RFC 3875 leaves it out; Apache, nginx and Caddy
// send "on" over TLS) or REQUEST_SCHEME. X-Forwarded-Proto decides only when it came from a
// trusted proxy (see forwarded).
func (c *cgiRequest) urlScheme() string {
	if c.fwdScheme != "" {
		return c.fwdScheme
	}
	if len(c.https) > 0 && !bytes.EqualFold(c.https, []byte("off")) && !bytes.Equal(c.https, []byte("0")) {
		return "https"
	}
	if bytes.EqualFold(c.requestScheme, []byte("https")) {
		return "https"
	}
	return "http"
}

// declaredLength parses CONTENT_LENGTH. ok is false when the web server sent none that is
// usable: absent, empty, negative (Caddy sends -1 for a chunked body) or not a number.
func (c *cgiRequest) declaredLength() (n int64, ok bool) {
	if !c.hasContentLength || len(c.contentLength) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(c.contentLength), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
