package access

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serveGuarded serves a handler that answers "ok" behind a's guard on a real
// loopback listener.
func serveGuarded(t *testing.T, a Policy) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = a.Guard(srv.Listener.Addr().String(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

type guardCase struct {
	name       string
	method     string
	host       string // Host header; empty: the URL's
	header     map[string]string
	wantStatus int
	wantACAO   string // Access-Control-Allow-Origin
}

func runGuardCases(t *testing.T, base string, cases []guardCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+"/wisp.v1.KVService/Get", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d (%s); want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q; want %q", got, tc.wantACAO)
			}
			if resp.StatusCode == http.StatusForbidden && len(body) > 300 {
				t.Errorf("refusal echoes %d bytes; want a short message", len(body))
			}
		})
	}
}

func TestGuardDefault(t *testing.T) {
	base := serveGuarded(t, Policy{})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	preflight := map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
	runGuardCases(t, base, []guardCase{
		{name: "no origin", method: "POST", wantStatus: 200},
		{name: "preflight from an unlisted origin", method: "OPTIONS", header: preflight, wantStatus: 403},
		{name: "simple request from an unlisted origin", method: "POST", header: map[string]string{"Origin": "https://evil.example"}, wantStatus: 403},
		{name: "same origin (the console)", method: "POST", header: map[string]string{"Origin": base}, wantStatus: 200},
		{name: "DNS rebinding: a foreign Host", method: "POST", host: "evil.example:" + port, wantStatus: 403},
		{name: "DNS rebinding without a port", method: "POST", host: "evil.example", wantStatus: 403},
		{name: "a long foreign Host", method: "POST", host: strings.Repeat("a", 2000) + ".example", wantStatus: 403},
		{name: "localhost", method: "POST", host: "localhost:" + port, wantStatus: 200},
		{name: "a .localhost name", method: "POST", host: "wisp.localhost:" + port, wantStatus: 200},
		{name: "IPv6 loopback", method: "POST", host: "[::1]:" + port, wantStatus: 200},
	})
}

func TestGuardListed(t *testing.T) {
	base := serveGuarded(t, Policy{CORSOrigins: []string{"http://localhost:5173"}, AllowedHosts: []string{"wisp.internal"}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	runGuardCases(t, base, []guardCase{
		{name: "preflight from a listed origin", method: "OPTIONS", wantStatus: 204, wantACAO: "http://localhost:5173",
			header: map[string]string{"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}},
		{name: "request from a listed origin", method: "POST", wantStatus: 200, wantACAO: "http://localhost:5173",
			header: map[string]string{"Origin": "http://localhost:5173"}},
		{name: "another port of a listed host", method: "POST", wantStatus: 403,
			header: map[string]string{"Origin": "http://localhost:8000"}},
		{name: "an allowed host", method: "POST", host: "wisp.internal:" + port, wantStatus: 200},
		{name: "an allowed host, upper case", method: "POST", host: "WISP.internal:" + port, wantStatus: 200},
		{name: "another host", method: "POST", host: "evil.example:" + port, wantStatus: 403},
	})
}

func TestGuardAnyOrigin(t *testing.T) {
	base := serveGuarded(t, Policy{CORSOrigins: []string{"*"}, AllowedHosts: []string{"*"}})
	runGuardCases(t, base, []guardCase{
		{name: "any origin", method: "POST", wantStatus: 200, wantACAO: "https://anything.example",
			header: map[string]string{"Origin": "https://anything.example"}},
		{name: "any host", method: "POST", host: "anything.example", wantStatus: 200},
	})
}

// A listener on a non-loopback address is reached by name from other
// machines: the Host check is for loopback listeners only.
func TestGuardNonLoopbackListener(t *testing.T) {
	h := Policy{}.Guard("10.0.0.1:8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("POST", "http://db.example:8080/x", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("Host db.example on a 10.0.0.1 listener: status %d; want 200", rec.Code)
	}
}
