package node

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckLayoutMembers(t *testing.T) {
	three := []Peer{
		{ID: "n1", URL: "http://127.0.0.1:8080", RaftAddr: "127.0.0.1:7080"},
		{ID: "n2", URL: "http://127.0.0.1:8081", RaftAddr: "127.0.0.1:7081"},
		{ID: "n3", URL: "http://127.0.0.1:8082", RaftAddr: "127.0.0.1:7082"},
	}
	five := append(append([]Peer(nil), three...),
		Peer{ID: "n4", URL: "http://127.0.0.1:8083", RaftAddr: "127.0.0.1:7083"},
		Peer{ID: "n5", URL: "http://127.0.0.1:8084", RaftAddr: "127.0.0.1:7084"})
	moved := append([]Peer(nil), three...)
	moved[1].RaftAddr = "127.0.0.1:9999"
	newURL := append([]Peer(nil), three...)
	newURL[0].URL = "http://127.0.0.1:9090"
	reordered := []Peer{three[2], three[0], three[1]}

	tests := []struct {
		name    string
		peers   []Peer
		changed bool
	}{
		{"same", three, false},
		{"same, listed in another order", reordered, false},
		{"another API URL", newURL, false},
		{"two more nodes", five, true},
		{"one fewer node", three[:2], true},
		{"a member's raft address moved", moved, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := checkLayout(dir, 8, 128, three); err != nil {
				t.Fatalf("create: %v", err)
			}
			err := checkLayout(dir, 8, 128, tt.peers)
			if !tt.changed {
				if err != nil {
					t.Fatalf("checkLayout = %v; want nil", err)
				}
				return
			}
			var mc *MembersChangedError
			if !errors.As(err, &mc) || !errors.Is(err, ErrMembersChanged) {
				t.Fatalf("checkLayout = %v; want a *MembersChangedError", err)
			}
			if len(mc.Created) != 3 || len(mc.Given) != len(tt.peers) {
				t.Errorf("Created %q, Given %q; want 3 and %d members", mc.Created, mc.Given, len(tt.peers))
			}
			if msg := err.Error(); !strings.Contains(msg, "n2@127.0.0.1:7081") || !strings.Contains(msg, "not supported yet") {
				t.Errorf("message %q does not name the members and what to do", msg)
			}
		})
	}
}

// A layout file written before members were recorded gets them on the next
// start, and is checked from then on.
func TestCheckLayoutRecordsMembers(t *testing.T) {
	dir := t.TempDir()
	old := []byte(`{"format": 1, "shards": 8, "key_vnodes": 128}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, layoutFile), old, 0o644); err != nil {
		t.Fatal(err)
	}
	peers := []Peer{{ID: "n1", URL: "http://a", RaftAddr: "127.0.0.1:7080"}}
	if err := checkLayout(dir, 8, 128, peers); err != nil {
		t.Fatalf("checkLayout on a file without members = %v; want nil", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, layoutFile))
	if err != nil {
		t.Fatal(err)
	}
	var got layout
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Members) != 1 || got.Members[0] != (layoutMember{ID: "n1", RaftAddr: "127.0.0.1:7080"}) {
		t.Errorf("members recorded = %+v; want n1@127.0.0.1:7080", got.Members)
	}
	two := append(peers, Peer{ID: "n2", URL: "http://b", RaftAddr: "127.0.0.1:7081"})
	if err := checkLayout(dir, 8, 128, two); !errors.Is(err, ErrMembersChanged) {
		t.Errorf("checkLayout with another member = %v; want ErrMembersChanged", err)
	}
}
