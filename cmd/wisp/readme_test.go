package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wisp-db/wisp/shards/node"
	"github.com/wisp-db/wisp/shards/node/nodetest"
)

// readmePath and examplePath are the README and the Go example it quotes,
// from this package's directory.
const (
	readmePath  = "../../README.md"
	examplePath = "../../sdk/client/example_test.go"
)

// codeBlock is a fenced code block of a Markdown file.
type codeBlock struct {
	lang  string
	line  int // of the opening fence, 1-based
	lines []string
}

// codeBlocks returns the fenced code blocks of md.
func codeBlocks(md string) []codeBlock {
	var (
		blocks []codeBlock
		cur    *codeBlock
	)
	for i, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &codeBlock{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: i + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		}
	}
	return blocks
}

// commands returns the shell commands of lines: continuation lines (a
// final backslash) joined, blank lines dropped.
func commands(lines []string) []string {
	var (
		cmds []string
		cur  string
	)
	for _, line := range lines {
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`)
			continue
		}
		cur += line
		if strings.TrimSpace(cur) != "" {
			cmds = append(cmds, strings.TrimSpace(cur))
		}
		cur = ""
	}
	return cmds
}

// shellSplit splits a shell command line as sh would, for the simple lines
// a README holds: words with '...', "..." and \ quoting, a # comment, and
// | between the commands of a pipeline. It returns the pipeline's commands
// and the comment.
func shellSplit(line string) (pipeline [][]string, comment string, err error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
		flush  = func() {
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		}
	)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			flush()
		case ch == '#' && !inWord:
			comment = strings.TrimSpace(line[i+1:])
			i = len(line)
		case ch == '|':
			flush()
			pipeline = append(pipeline, words)
			words = nil
		case ch == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, "", fmt.Errorf("unterminated ' in %q", line)
			}
			word.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case ch == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(line) {
					return nil, "", fmt.Errorf("unterminated \" in %q", line)
				}
				if line[i] == '"' {
					break
				}
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`$"\`+"`", line[i+1]) >= 0 {
					i++
				}
				word.WriteByte(line[i])
			}
		case ch == '\\' && i+1 < len(line):
			i++
			word.WriteByte(line[i])
			inWord = true
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	return append(pipeline, words), comment, nil
}

func TestShellSplit(t *testing.T) {
	tests := []struct {
		line     string
		pipeline [][]string
		comment  string
	}{
		{"go run ./cmd/wisp kv get greeting   # hello", [][]string{{"go", "run", "./cmd/wisp", "kv", "get", "greeting"}}, "hello"},
		{`curl -H 'Content-Type: application/json' -d '{"key":"a#b"}' x`,
			[][]string{{"curl", "-H", "Content-Type: application/json", "-d", `{"key":"a#b"}`, "x"}}, ""},
		{`echo "a \"b\" c"\ d`, [][]string{{"echo", `a "b" c d`}}, ""},
		{"curl -s u | grep wisp_", [][]string{{"curl", "-s", "u"}, {"grep", "wisp_"}}, ""},
	}
	for _, tc := range tests {
		pipeline, comment, err := shellSplit(tc.line)
		if err != nil || fmt.Sprint(pipeline) != fmt.Sprint(tc.pipeline) || comment != tc.comment {
			t.Errorf("shellSplit(%q) = %q, %q, %v; want %q, %q", tc.line, pipeline, comment, err, tc.pipeline, tc.comment)
		}
	}
}

// TestReadmeGoExample: README's Go block is sdk/client's Example, one
// indentation level less (TestExampleRuns runs that against a cluster).
func TestReadmeGoExample(t *testing.T) {
	md, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range codeBlocks(string(md)) {
		if b.lang != "go" {
			continue
		}
		n++
		var indented strings.Builder
		for _, line := range b.lines {
			if line != "" {
				indented.WriteString("\t")
			}
			indented.WriteString(line + "\n")
		}
		if !strings.Contains(string(src), "\n"+indented.String()) {
			t.Errorf("README.md:%d: the Go block is not in %s (indented one tab):\n%s", b.line, examplePath, strings.Join(b.lines, "\n"))
		}
	}
	if n == 0 {
		t.Errorf("README.md has no Go block")
	}
}

// readmeMayFail are the README's commands documented to fail, and the
// error each may fail with.
var readmeMayFail = map[string]string{
	// "CAS: fails unless greeting is at version 3".
	"go run ./cmd/wisp kv put greeting hi --if-version 3": `Error: put "greeting": precondition failed: current version is `,
}

// TestReadmeCommands runs every `go run ./cmd/wisp` and curl command of
// README's shell blocks, in order, against a cluster set up as `wispd dev`
// sets one up (3 nodes, 8 shards, /metrics), the README's 127.0.0.1:8080,
// :8081 and :8082 standing for its nodes. Each must succeed but those in
// readmeMayFail; the output a kv get or kv incr line's comment shows must
// be its output.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	md, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	const token = "the-readme-test-operator-token"
	c := nodetest.Start(t, nodetest.Options{Shards: 8, Tune: func(cfg *node.Config) { cfg.OperatorToken = token }})
	t.Setenv(operatorTokenEnv, token)  // what wispd dev's token file gives the CLI beside it
	nodeURL := make(map[string]string) // README host:port -> the test node's
	for i := range c.Size() {
		nodeURL[fmt.Sprintf("127.0.0.1:%d", 8080+i)] = c.URL(i)
	}
	t.Setenv(endpointEnv, c.URL(0)) // the CLI's default, 127.0.0.1:8080
	t.Chdir("../..")                // where the README's commands run

	var wispLines, curlLines int
	for _, b := range codeBlocks(string(md)) {
		if b.lang != "sh" {
			continue
		}
		for _, line := range commands(b.lines) {
			pipeline, comment, err := shellSplit(line)
			if err != nil {
				t.Errorf("README.md:%d: %v", b.line, err)
				continue
			}
			words := pipeline[0]
			if strings.Contains(line, "./cmd/wisp") && (len(pipeline) > 1 || slices.ContainsFunc(words, isRedirect)) {
				t.Errorf("README.md:%d: %s: the test runs wisp commands without pipes or redirections", b.line, line)
				continue
			}
			switch {
			case len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/wisp":
				wispLines++
				readmeWisp(t, line, words[3:], comment)
			case len(words) > 0 && words[0] == "curl":
				curlLines++
				readmeCurl(t, line, pipeline, nodeURL)
			}
		}
	}
	// Catch a parser that silently stops finding the commands.
	if wispLines < 17 || curlLines < 4 {
		t.Errorf("README.md: found %d wisp and %d curl commands; want at least 17 and 4", wispLines, curlLines)
	}
}

func isRedirect(word string) bool { return strings.ContainsAny(word, "<>") }

// readmeOutputCmd matches the README lines whose comment is their output.
var readmeOutputCmd = regexp.MustCompile(`^go run \./cmd/wisp kv (get|incr) `)

func readmeWisp(t *testing.T, line string, args []string, comment string) {
	t.Helper()
	start := time.Now()
	r := wisp(t, args...)
	cmd, _, _ := strings.Cut(line, " #")
	cmd = strings.TrimSpace(cmd)
	t.Logf("%s: exit %d in %v", cmd, r.code, time.Since(start).Round(time.Millisecond))
	if prefix, ok := readmeMayFail[cmd]; ok && r.code == exitFailure && strings.HasPrefix(r.stderr, prefix) {
		return
	}
	if r.code != exitOK {
		t.Errorf("README: %s = exit %d, stderr %q; want 0", cmd, r.code, r.stderr)
		return
	}
	if comment != "" && readmeOutputCmd.MatchString(cmd) && r.stdout != comment+"\n" {
		t.Errorf("README: %s printed %q; the README says %q", cmd, r.stdout, comment)
	}
}

// readmeCurl runs a curl command (-H, -d, -s and a URL) with net/http; a
// following `| grep WORD` requires WORD in the response body.
func readmeCurl(t *testing.T, line string, pipeline [][]string, nodeURL map[string]string) {
	t.Helper()
	var (
		header = http.Header{}
		body   *string
		target string
	)
	words := pipeline[0][1:]
	for i := 0; i < len(words); i++ {
		switch w := words[i]; {
		case (w == "-H" || w == "-d") && i+1 < len(words):
			i++
			if w == "-d" {
				body = &words[i]
				continue
			}
			k, v, ok := strings.Cut(words[i], ":")
			if !ok {
				t.Errorf("README: %s: bad header %q", line, words[i])
				return
			}
			header.Add(k, strings.TrimSpace(v))
		case w == "-s":
		case strings.HasPrefix(w, "http://"):
			u, err := url.Parse(w)
			if err != nil || nodeURL[u.Host] == "" {
				t.Errorf("README: %s: URL %q is not one of the dev cluster's", line, w)
				return
			}
			target = nodeURL[u.Host] + u.RequestURI()
		default:
			t.Errorf("README: %s: the test does not know curl's %q", line, w)
			return
		}
	}
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		method, rd = http.MethodPost, strings.NewReader(*body) // as curl -d
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, rd)
	if err != nil {
		t.Errorf("README: %s: %v", line, err)
		return
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("README: %s: %v", line, err)
		return
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	t.Logf("%s: %s", strings.Join(pipeline[0], " "), resp.Status)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("README: %s = %s %q, %v; want 200 OK", line, resp.Status, got, err)
		return
	}
	for _, cmd := range pipeline[1:] {
		if len(cmd) != 2 || cmd[0] != "grep" {
			t.Errorf("README: %s: the test does not know the pipe to %q", line, cmd)
			continue
		}
		if !strings.Contains(string(got), cmd[1]) {
			t.Errorf("README: %s: the response has no %q", line, cmd[1])
		}
	}
}
