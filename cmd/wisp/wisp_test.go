package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

type result struct {
	code           int
	stdout, stderr string
}

// wisp runs the CLI in-process with args and an empty stdin.
func wisp(t *testing.T, args ...string) result {
	t.Helper()
	return wispIn(t, strings.NewReader(""), args...)
}

// wispIn runs the CLI in-process with args, reading stdin.
func wispIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, stdin, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	// Nothing listens here; a usage error must fail before dialing.
	const endpoint = "--endpoint=http://127.0.0.1:1"
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--output", "xml", "kv", "get", "k"}, `Error: invalid --output "xml": want text or json`},
		{[]string{"--consistency", "eventual", "kv", "get", "k"}, `Error: invalid --consistency "eventual": want linearizable or stale`},
		{[]string{"--timeout", "-1s", "kv", "get", "k"}, `Error: invalid --timeout -1s: want 0 (none) or more`},
		{[]string{"--timeout", "soon", "kv", "get", "k"}, `Error: invalid argument "soon" for "--timeout" flag`},
		{[]string{"--endpoint", "localhost", "kv", "get", "k"}, `Error: invalid --endpoint "localhost": want a URL such as http://127.0.0.1:8080`},
		{[]string{"kv", "get"}, "Error: accepts 1 arg(s), received 0"},
		{[]string{"kv", "get", ""}, "Error: KEY must not be empty"},
		{[]string{"kv", "put", "k"}, "Error: missing VALUE: give it as an argument, - to read stdin, or --file PATH"},
		{[]string{"kv", "put", "k", "v", "w"}, "Error: accepts between 1 and 2 arg(s), received 3"},
		{[]string{"kv", "put", "k", "v", "--if-version", "3", "--if-absent"}, "Error: --if-version and --if-absent cannot be used together"},
		{[]string{"kv", "put", "k", "v", "--if-version", "-3"}, `Error: invalid argument "-3" for "--if-version" flag`},
		{[]string{"kv", "put", "k", "v", "--ttl", "-1s"}, "Error: invalid --ttl -1s: want 0 (none) or more"},
		{[]string{"kv", "put", "k", "v", "--bogus"}, "Error: unknown flag: --bogus"},
		{[]string{"kv", "incr", "k", "two"}, `Error: invalid DELTA "two": want an integer`},
		{[]string{"kv", "incr", "k", "1", "2"}, "Error: accepts between 1 and 2 arg(s), received 3"},
		{[]string{"kv", "scan", "--limit", "-1"}, "Error: invalid --limit -1: want 0 (all) or more"},
		{[]string{"kv", "scan", "a", "b"}, "Error: accepts between 0 and 1 arg(s), received 2"},
		{[]string{"kv", "frob"}, `Error: unknown command "frob" for "wisp kv"`},
		{[]string{"frob"}, `Error: unknown command "frob" for "wisp"`},
		{[]string{"cluster", "status", "extra"}, "Error: accepts 0 arg(s), received 1"},
		{[]string{"cluster", "ring", "extra"}, "Error: accepts 0 arg(s), received 1"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := wisp(t, append([]string{endpoint}, tc.args...)...)
			if r.code != exitUsage {
				t.Errorf("exit code = %d; want %d (stderr %q)", r.code, exitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, tc.stderr) || !strings.Contains(r.stderr, "--help' for usage.") {
				t.Errorf("stderr = %q; want it to start with %q and point at --help", r.stderr, tc.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q; want nothing", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"kv"}, {"cluster"}, {"kv", "put", "--help"}} {
		r := wisp(t, args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("wisp %q = exit %d, stdout %q; want usage and exit 0", args, r.code, r.stdout)
		}
	}
}

func TestEndpointFlag(t *testing.T) {
	t.Setenv(endpointEnv, "")
	if got := newRootCmd(nil, nil, nil).PersistentFlags().Lookup("endpoint").DefValue; got != defaultEndpoint {
		t.Errorf("--endpoint default = %q; want %q", got, defaultEndpoint)
	}
	s := newFakeServer(t, nil)
	t.Setenv(endpointEnv, s.URL)
	if r := wisp(t, "kv", "put", "k", "v"); r.code != exitOK {
		t.Errorf("put with %s=%s: exit %d, stderr %q; want 0", endpointEnv, s.URL, r.code, r.stderr)
	}
	// The flag wins over the environment.
	r := wisp(t, "--endpoint", "http://127.0.0.1:1", "--timeout", "300ms", "kv", "get", "k")
	if r.code != exitFailure || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("get with --endpoint: exit %d, stderr %q; want a failure to reach 127.0.0.1:1", r.code, r.stderr)
	}
}

func TestKVText(t *testing.T) {
	s := newFakeServer(t, nil)
	ep := "--endpoint=" + s.URL
	steps := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"kv", "put", "greeting", "hello"}, 0, "OK version=1\n", ""},
		{[]string{"kv", "get", "greeting"}, 0, "hello\n", ""},
		{[]string{"kv", "put", "greeting", "hi", "--if-version", "1"}, 0, "OK version=2\n", ""},
		{[]string{"kv", "put", "greeting", "hey", "--if-version", "1"}, 1, "",
			"Error: put \"greeting\": precondition failed: current version is 2\n"},
		{[]string{"kv", "put", "greeting", "hey", "--if-absent"}, 1, "",
			"Error: put \"greeting\": precondition failed: current version is 2\n"},
		{[]string{"kv", "put", "new", "x", "--if-version", "5"}, 1, "",
			"Error: put \"new\": precondition failed: key does not exist\n"},
		{[]string{"kv", "put", "session", "s", "--ttl", "1h", "--if-absent"}, 0, "OK version=3\n", ""},
		{[]string{"kv", "get", "missing"}, 1, "", "Error: key not found: \"missing\"\n"},
		{[]string{"kv", "incr", "visits"}, 0, "1\n", ""},
		{[]string{"kv", "incr", "visits", "10"}, 0, "11\n", ""},
		{[]string{"kv", "incr", "visits", "-20"}, 0, "-9\n", ""},
		{[]string{"kv", "incr", "greeting"}, 1, "",
			"Error: increment \"greeting\": failed_precondition: value is not an integer\n"},
		{[]string{"kv", "del", "greeting", "--if-version", "1"}, 1, "",
			"Error: delete \"greeting\": precondition failed: current version is 2\n"},
		{[]string{"kv", "del", "greeting", "--if-version", "2"}, 0, "OK deleted=true version=7\n", ""},
		{[]string{"kv", "rm", "greeting"}, 0, "OK deleted=false version=8\n", ""},
		{[]string{"kv", "put", "user/b", "2"}, 0, "OK version=9\n", ""},
		{[]string{"kv", "put", "user/a", "1"}, 0, "OK version=10\n", ""},
		{[]string{"kv", "put", "user/c", "3"}, 0, "OK version=11\n", ""},
		{[]string{"kv", "scan", "user/"}, 0, "user/a\t1\nuser/b\t2\nuser/c\t3\n", ""},
		{[]string{"kv", "scan", "user/", "--start", "user/b", "--keys-only"}, 0, "user/b\nuser/c\n", ""},
		{[]string{"kv", "scan", "--limit", "2", "--keys-only"}, 0, "session\nuser/a\n", ""},
		{[]string{"kv", "scan", "nothing/"}, 0, "", ""},
	}
	for _, st := range steps {
		r := wisp(t, append([]string{ep}, st.args...)...)
		if r.code != st.code || r.stdout != st.stdout || r.stderr != st.stderr {
			t.Errorf("wisp %q = exit %d, stdout %q, stderr %q; want %d, %q, %q",
				st.args, r.code, r.stdout, r.stderr, st.code, st.stdout, st.stderr)
		}
	}
}

func TestKVJSON(t *testing.T) {
	s := newFakeServer(t, nil)
	ep := "--endpoint=" + s.URL
	steps := []struct {
		args   []string
		stdout string
	}{
		{[]string{"kv", "put", "k", "<v>"}, "{\n  \"key\": \"k\",\n  \"version\": 1\n}\n"},
		{[]string{"kv", "get", "k"}, "{\n  \"key\": \"k\",\n  \"value\": \"<v>\",\n  \"version\": 1,\n  \"expires_at\": null\n}\n"},
		{[]string{"kv", "put", "bin\xff", "\x00\xfe"}, "{\n  \"key\": \"Ymlu/w==\",\n  \"key_encoding\": \"base64\",\n  \"version\": 2\n}\n"},
		{[]string{"kv", "get", "bin\xff"}, "{\n  \"key\": \"Ymlu/w==\",\n  \"key_encoding\": \"base64\",\n  \"value\": \"AP4=\",\n  \"value_encoding\": \"base64\",\n  \"version\": 2,\n  \"expires_at\": null\n}\n"},
		{[]string{"kv", "incr", "n", "5"}, "{\n  \"key\": \"n\",\n  \"value\": 5,\n  \"version\": 3\n}\n"},
		{[]string{"kv", "del", "n"}, "{\n  \"key\": \"n\",\n  \"deleted\": true,\n  \"version\": 4\n}\n"},
		{[]string{"kv", "scan", "nothing/"}, "{\n  \"items\": []\n}\n"},
	}
	for _, st := range steps {
		r := wisp(t, append([]string{ep, "--output", "json"}, st.args...)...)
		if r.code != 0 || r.stdout != st.stdout || !json.Valid([]byte(r.stdout)) {
			t.Errorf("wisp -o json %q = exit %d, stdout %q, stderr %q; want 0, %q",
				st.args, r.code, r.stdout, r.stderr, st.stdout)
		}
	}

	r := wisp(t, ep, "-o", "json", "kv", "scan")
	golden(t, "scan.json", r.stdout)
	r = wisp(t, ep, "-o", "json", "kv", "scan", "--keys-only")
	golden(t, "scan-keys-only.json", r.stdout)

	// A TTL shows as an RFC 3339 time in UTC.
	before := time.Now()
	if r := wisp(t, ep, "kv", "put", "ttl", "v", "--ttl", "90s"); r.code != 0 {
		t.Fatalf("put --ttl: %q", r.stderr)
	}
	r = wisp(t, ep, "-o", "json", "kv", "get", "ttl")
	var got struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("get -o json = %q: %v", r.stdout, err)
	}
	if got.ExpiresAt.Location() != time.UTC ||
		got.ExpiresAt.Before(before.Add(89*time.Second)) || got.ExpiresAt.After(time.Now().Add(91*time.Second)) {
		t.Errorf("expires_at = %v; want about 90s from now, in UTC", got.ExpiresAt)
	}
}

func TestScanFollowsPages(t *testing.T) {
	s := newFakeServer(t, nil)
	ep := "--endpoint=" + s.URL
	const keys = 2*scanPageSize + 10
	for i := range keys {
		if r := wisp(t, ep, "kv", "incr", fmt.Sprintf("k/%04d", i)); r.code != 0 {
			t.Fatalf("incr: %q", r.stderr)
		}
	}
	tests := []struct {
		limit string
		want  int
	}{
		{"50", 50},
		{"150", 150},
		{"0", keys},
		{"1000", keys},
	}
	for _, tc := range tests {
		r := wisp(t, ep, "kv", "scan", "k/", "--keys-only", "--limit", tc.limit)
		if n := strings.Count(r.stdout, "\n"); r.code != 0 || n != tc.want {
			t.Errorf("scan --limit %s = exit %d, %d lines; want %d", tc.limit, r.code, n, tc.want)
		}
	}
}

func TestConsistencyFlag(t *testing.T) {
	s := newFakeServer(t, nil)
	ep := "--endpoint=" + s.URL
	tests := []struct {
		args []string
		want wispv1.Consistency
	}{
		{[]string{"kv", "get", "k"}, wispv1.Consistency_CONSISTENCY_LINEARIZABLE},
		{[]string{"--consistency", "stale", "kv", "get", "k"}, wispv1.Consistency_CONSISTENCY_STALE},
		{[]string{"kv", "scan", "--consistency=stale"}, wispv1.Consistency_CONSISTENCY_STALE},
		{[]string{"kv", "scan", "--consistency=linearizable"}, wispv1.Consistency_CONSISTENCY_LINEARIZABLE},
	}
	for _, tc := range tests {
		wisp(t, append([]string{ep}, tc.args...)...)
		if got := s.lastConsistency(); got != tc.want {
			t.Errorf("wisp %q sent consistency %v; want %v", tc.args, got, tc.want)
		}
	}
}

func TestTimeoutFlag(t *testing.T) {
	block := make(chan struct{})
	s := newFakeServer(t, block)
	t.Cleanup(func() { close(block) }) // runs before the server's Close
	start := time.Now()
	r := wisp(t, "--endpoint="+s.URL, "--timeout=100ms", "kv", "get", "k")
	if r.code != exitFailure || !strings.Contains(r.stderr, "deadline_exceeded") {
		t.Errorf("get with --timeout 100ms = exit %d, stderr %q; want 1 and deadline_exceeded", r.code, r.stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("get with --timeout 100ms took %v", d)
	}
}

func TestClusterStatus(t *testing.T) {
	s := newFakeServer(t, nil)
	r := wisp(t, "--endpoint="+s.URL, "cluster", "status")
	if r.code != 0 {
		t.Fatalf("cluster status: exit %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "status.txt", r.stdout)

	r = wisp(t, "--endpoint="+s.URL, "cluster", "status", "--replicas")
	if r.code != 0 {
		t.Fatalf("cluster status --replicas: exit %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "status-replicas.txt", r.stdout)

	r = wisp(t, "--endpoint="+s.URL, "--output=json", "cluster", "status")
	if r.code != 0 {
		t.Fatalf("cluster status -o json: exit %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "status.json", r.stdout)
}

func TestStatusEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStatus(&buf, &wispv1.StatusResponse{
		Shards: []*wispv1.ShardStatus{{Id: 3}},
	}, true); err != nil {
		t.Fatal(err)
	}
	golden(t, "status-empty.txt", buf.String())
}

// TestStatusUnreachable: a dead node stays in the table, marked so, with
// its gossip health, and so do its replicas; the move that rebuilds one is
// listed, the shard's target shown where its voters differ from it, and
// the meta group has its row.
func TestStatusUnreachable(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStatus(&buf, &wispv1.StatusResponse{
		NodeId: "n1", Epoch: 7,
		Nodes: []*wispv1.NodeStatus{
			{Id: "n1", Url: "http://127.0.0.1:8080", Reachable: true, Replicas: 1, Leaders: 1, Health: "alive", State: "active", Zone: "eu-1a", Build: "v0.6.0", MemoryUsedBytes: 3 << 20, MemoryBudgetBytes: 64 << 20},
			{Id: "n2", Url: "http://127.0.0.1:8081", Replicas: 1, Error: "unavailable: connection refused", Health: "dead", State: "active"},
			{Id: "n3", Url: "http://127.0.0.1:8082", Reachable: true, Replicas: 1, Health: "alive", State: "draining", Zone: "eu-1b", Build: "v0.6.0", MemoryUsedBytes: 1 << 20},
		},
		Shards: []*wispv1.ShardStatus{{Id: 0, LeaderId: "n1", Replicas: []*wispv1.ReplicaStatus{
			{NodeId: "n1", State: "leader", Voter: true},
			{NodeId: "n2", State: "unreachable", Voter: true},
			{NodeId: "n3", State: "follower"},
		}, TargetNodeIds: []string{"n1", "n2", "n3"}}},
		Meta: &wispv1.ShardStatus{LeaderId: "n3", Replicas: []*wispv1.ReplicaStatus{
			{NodeId: "n1", State: "follower", Voter: true},
			{NodeId: "n3", State: "leader", Voter: true},
			{NodeId: "n2", State: "unreachable", Voter: true},
		}},
		Moves: []*wispv1.MoveStatus{
			{Shard: 0, Kind: "add-learner", NodeId: "n3", Reason: "replaces n2 (dead)", StartedUnixMs: 1_765_000_000_000},
			{MetaGroup: true, Kind: "promote", NodeId: "n1", Reason: "learner caught up", StartedUnixMs: 1_765_000_000_500},
		},
		Placement: &wispv1.PlacementStatus{LeaderId: "n1", AtUnixMs: 1_765_000_001_000, Steps: []string{"shard 0: promote n3 (learner caught up)"}, Stuck: []string{"shard 1: waits for a leader"}, Queued: 2, Errors: []string{"shard 2: remove n2: no leader known"}},
	}, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "status-unreachable.txt", buf.String())
}
