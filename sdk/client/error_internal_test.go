package client

import (
	"strings"
	"testing"
)

func TestQuoteKey(t *testing.T) {
	long := strings.Repeat("k", 5<<10)
	for _, tt := range []struct{ key, want string }{
		{"greeting", `"greeting"`},
		{strings.Repeat("k", 64), `"` + strings.Repeat("k", 64) + `"`},
		{long, `"` + strings.Repeat("k", 64) + `"... (5120 bytes)`},
	} {
		if got := quoteKey(tt.key); got != tt.want {
			t.Errorf("quoteKey(%d bytes) = %q; want %q", len(tt.key), got, tt.want)
		}
	}
}
