package meta

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodeCommandRefuses(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"not json", `{`},
		{"unknown field", `{"format":1,"command":{"op":"remove-node","node_id":"n1","force":true}}`},
		{"unknown envelope field", `{"format":1,"command":{"op":"remove-node","node_id":"n1"},"x":1}`},
		{"other format", `{"format":2,"command":{"op":"remove-node","node_id":"n1"}}`},
		{"no command", `{"format":1}`},
		{"trailing data", `{"format":1,"command":{"op":"remove-node","node_id":"n1"}} {}`},
		{"invalid command", `{"format":1,"command":{"op":"remove-node","node_id":"bad id"}}`},
		{"oversized", `{"format":1,"command":{"op":"remove-node","node_id":"` + strings.Repeat("a", MaxCommandBytes) + `"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if cmd, err := DecodeCommand([]byte(tt.in)); err == nil {
				t.Errorf("DecodeCommand = %+v; want an error", cmd)
			}
		})
	}
}

func TestReadMapRefuses(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"unsorted nodes", `{"format":1,"map":{"epoch":2,"shards":1,"key_vnodes":1,"replicas":[[{"node":"a","voter":true}]],"nodes":[{"id":"b","url":"http://b:1","raft_addr":"b:2","state":"active","added_epoch":1},{"id":"a","url":"http://a:1","raft_addr":"a:2","state":"active","added_epoch":1}],"settings":{}}}`},
		{"shared raft address", `{"format":1,"map":{"epoch":2,"shards":1,"key_vnodes":1,"nodes":[{"id":"a","url":"http://a:1","raft_addr":"x:2","state":"active","added_epoch":1},{"id":"b","url":"http://b:1","raft_addr":"x:2","state":"active","added_epoch":1}],"settings":{}}}`},
		{"move past the shards", `{"format":1,"map":{"epoch":2,"shards":1,"key_vnodes":1,"nodes":[{"id":"a","url":"http://a:1","raft_addr":"a:2","state":"active","added_epoch":1}],"settings":{},"moves":[{"shard":3,"kind":"k","node":"a","started_unix_ms":0}]}}`},
		{"unknown field", `{"format":1,"map":{"epoch":0,"shards":0,"key_vnodes":0,"nodes":null,"settings":{},"extra":1}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := ReadMap(strings.NewReader(tt.in)); err == nil {
				t.Errorf("ReadMap = %+v; want an error", m)
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, cmd := range []*Command{
		bootstrapCmd(3),
		{Op: OpSetReplicas, Shard: 2, Replicas: [][]Replica{{{Node: "n1", Voter: true}, {Node: "n4"}}}},
		{Op: OpAddNode, Node: ptr(node(4))},
		{Op: OpSetNodeState, NodeID: "n2", State: Draining},
		{Op: OpRemoveNode, NodeID: "n3"},
		{Op: OpSetSettings, Settings: &Settings{MaxMemoryBytes: ptr[int64](1 << 20), EvictionPolicy: ptr("allkeys-lru")}},
		{Op: OpStartMove, Move: &Move{Shard: 1, Kind: "add-learner", Node: "n1"}},
		{Op: OpEndMove, Shard: 1},
	} {
		b, err := EncodeCommand(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// A decoded command applies to any map without breaking it.
		m := &Map{}
		for _, c := range []*Command{bootstrapCmd(3), cmd} {
			next, err := Apply(m, c)
			if err == nil {
				if verr := next.Validate(); verr != nil {
					t.Fatalf("Apply(%+v) broke the map: %v", c, verr)
				}
				m = next
			}
		}
		again, err := EncodeCommand(cmd)
		if err != nil {
			t.Fatalf("re-encode a decoded command: %v", err)
		}
		if _, err := DecodeCommand(again); err != nil {
			t.Fatalf("decode a re-encoded command: %v", err)
		}
	})
}

func FuzzReadMap(f *testing.F) {
	var buf bytes.Buffer
	m := &Map{}
	m, _ = Apply(m, bootstrapCmd(2))
	m, _ = Apply(m, &Command{Op: OpStartMove, Move: &Move{Shard: 1, Kind: "add-learner", Node: "n1"}})
	if err := WriteMap(&buf, m); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadMap(bytes.NewReader(b))
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ReadMap returned an invalid map: %v", err)
		}
	})
}
