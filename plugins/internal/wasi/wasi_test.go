package wasi

import (
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

func TestOffers(t *testing.T) {
	i32 := api.ValueTypeI32
	for _, tc := range []struct {
		module, name    string
		params, results []api.ValueType
		want            bool
	}{
		{ModuleName, "fd_write", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, true},
		{ModuleName, "proc_exit", []api.ValueType{i32}, nil, true},
		{ModuleName, "fd_write", []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, false}, // wrong type
		{ModuleName, "path_open", nil, nil, false},
		{ModuleName, "sock_accept", []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, false},
		{"env", "fd_write", []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, false},
	} {
		if got := Offers(tc.module, tc.name, tc.params, tc.results); got != tc.want {
			t.Errorf("Offers(%s.%s%v%v) = %v; want %v", tc.module, tc.name, tc.params, tc.results, got, tc.want)
		}
	}
	if n := len(Functions()); n != 15 {
		t.Errorf("%d functions offered; want the 15 a Go guest imports", n)
	}
}

// TestOutputHead: the state keeps the first bytes a call writes, at most
// outputHeadBytes, and forgets them on ResetOutput.
func TestOutputHead(t *testing.T) {
	s := NewState()
	s.keep([]byte("panic: boom\n"))
	s.keep([]byte(strings.Repeat("x", 2*outputHeadBytes)))
	if got := s.Output(); len(got) != outputHeadBytes || !strings.HasPrefix(got, "panic: boom\n") {
		t.Errorf("Output() = %d bytes starting %q; want %d starting with the panic", len(got), got[:12], outputHeadBytes)
	}
	s.ResetOutput()
	if got := s.Output(); got != "" {
		t.Errorf("Output() after ResetOutput = %q; want empty", got)
	}
}
