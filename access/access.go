// Package access decides who may reach a node's HTTP port: the CORS policy
// for browsers on other origins, and, on a loopback listener, a Host check
// against DNS rebinding. It wraps any http.Handler.
package access

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Policy is who may reach a node's HTTP port through a browser. A listener on
// loopback is reachable from every web page its user opens (the browser is
// the bridge), so the default lets no other origin in: a page elsewhere
// cannot read or write the store, and on a loopback listener a request whose
// Host header names a foreign domain (DNS rebinding, which gets around any
// CORS policy) is refused. The zero value is that default.
type Policy struct {
	// CORSOrigins are the origins (scheme://host[:port], as browsers send
	// them) whose pages may call the API cross-origin with Connect or
	// gRPC-Web. "*" allows any origin. Empty: none; same-origin pages (the
	// console) need no entry.
	CORSOrigins []string
	// AllowedHosts are the Host header names accepted on a loopback
	// listener besides localhost (and *.localhost), loopback IP addresses
	// and the listen address itself: the names under which other machines
	// or proxies reach this node. "*" turns the check off. Hosts are
	// compared without their port, case-insensitively.
	AllowedHosts []string
}

// Guard wraps h with the access policy for a server listening on addr
// (host:port). Requests it refuses get 403 and a plain-text reason; they
// never reach h.
func (a Policy) Guard(addr string, h http.Handler) http.Handler {
	g := &guard{next: h, anyOrigin: slices.Contains(a.CORSOrigins, "*")}
	for _, o := range a.CORSOrigins {
		g.origins = append(g.origins, strings.ToLower(strings.TrimSuffix(o, "/")))
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	g.checkHost = isLoopbackHost(host) && !slices.Contains(a.AllowedHosts, "*")
	g.hosts = []string{strings.ToLower(host)}
	for _, h := range a.AllowedHosts {
		g.hosts = append(g.hosts, strings.ToLower(h))
	}
	return g
}

type guard struct {
	next      http.Handler
	origins   []string // lower case, no trailing slash
	anyOrigin bool
	checkHost bool
	hosts     []string // accepted Host names besides loopback ones, lower case
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.checkHost && !g.hostAllowed(r.Host) {
		http.Error(w, fmt.Sprintf("wisp: Host %s is not allowed on a loopback listener (a guard against DNS rebinding); name it with --allowed-hosts", quoteShort(r.Host)), http.StatusForbidden)
		return
	}
	origin := r.Header.Get("Origin")
	if origin == "" || sameOrigin(origin, r.Host) {
		g.next.ServeHTTP(w, r)
		return
	}
	if !g.anyOrigin && !slices.Contains(g.origins, strings.ToLower(origin)) {
		// No CORS headers: the browser refuses the page the answer. Refusing
		// here as well keeps a cross-origin "simple" request (one a browser
		// sends without asking first) from taking effect.
		http.Error(w, fmt.Sprintf("wisp: origin %s is not allowed; list it with --cors-origin", quoteShort(origin)), http.StatusForbidden)
		return
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Add("Vary", "Origin")
	hdr.Set("Access-Control-Expose-Headers", corsExposed)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		hdr.Set("Access-Control-Allow-Methods", "GET, POST")
		hdr.Set("Access-Control-Allow-Headers", corsAllowed)
		hdr.Set("Access-Control-Max-Age", "7200")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	g.next.ServeHTTP(w, r)
}

func (g *guard) hostAllowed(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	host = strings.ToLower(host)
	return isLoopbackHost(host) || slices.Contains(g.hosts, host)
}

// isLoopbackHost reports whether host (no port) is a loopback IP address,
// localhost, or a name under .localhost, which browsers resolve to
// loopback themselves (RFC 6761), so no DNS answer can rebind it.
func isLoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether origin is the page's own server: a page served
// by this node (the console) calling its API.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, host)
}

// quoteShort quotes s for an error message, cut to 64 bytes: a refusal must
// not echo an attacker's long header back whole.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q (%d bytes)", s[:max]+"...", len(s))
	}
	return fmt.Sprintf("%q", s)
}

// The headers Connect, gRPC-Web and Wisp use, as connectrpc.com/cors lists them.
var (
	corsAllowed = strings.Join([]string{
		"Content-Type", "Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Accept-Encoding",
		"Connect-Content-Encoding", "Grpc-Timeout", "Grpc-Accept-Encoding", "Grpc-Encoding",
		"X-Grpc-Web", "X-User-Agent", "Authorization",
	}, ", ")
	corsExposed = strings.Join([]string{
		"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Connect-Content-Encoding", "Grpc-Encoding",
	}, ", ")
)
