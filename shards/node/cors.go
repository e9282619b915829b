package node

import (
	"net/http"
	"strings"
)

// CORS lets browser tools on other origins call the API with Connect or
// gRPC-Web. It allows any origin: Wisp has no cookies or ambient credentials,
// so a cross-origin page can do nothing a direct request could not.
func CORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			h.ServeHTTP(w, r)
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
		h.ServeHTTP(w, r)
	})
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
