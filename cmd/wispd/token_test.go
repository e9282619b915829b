package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorToken: the flag, the file (owner-only, long enough), and
// dev's token made once in its data directory and kept.
func TestOperatorToken(t *testing.T) {
	dir := t.TempDir()
	f := &serverFlags{dataDir: dir}

	if tok, _, err := f.resolveOperatorToken(false); err != nil || tok != "" {
		t.Errorf("start without a token = %q, %v; want none (operator actions refused)", tok, err)
	}
	tok, file, err := f.resolveOperatorToken(true)
	if err != nil || len(tok) < minTokenBytes || file != filepath.Join(dir, operatorTokenFileName) {
		t.Fatalf("dev without a token = %q, %q, %v; want one made in the data directory", tok, file, err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("dev token file: %v, %v; want mode 0600", st.Mode(), err)
	}
	if again, _, err := f.resolveOperatorToken(true); err != nil || again != tok {
		t.Errorf("dev restarted: token %q, %v; want the same %q", again, err, tok)
	}

	f.operatorToken = "short"
	if _, _, err := f.resolveOperatorToken(false); err == nil {
		t.Error("a 5-byte --operator-token was taken")
	}
	f.operatorToken = "a-long-enough-operator-token"
	if got, _, err := f.resolveOperatorToken(true); err != nil || got != f.operatorToken {
		t.Errorf("--operator-token = %q, %v", got, err)
	}
	f.operatorTokenFile = file
	if _, _, err := f.resolveOperatorToken(false); err == nil {
		t.Error("both --operator-token and --operator-token-file were taken")
	}
	f.operatorToken = ""

	for name, tc := range map[string]struct {
		text string
		mode os.FileMode
		want string // in the error; "" for none
	}{
		"good":        {"0123456789abcdef-token\n", 0o600, ""},
		"world read":  {"0123456789abcdef-token\n", 0o644, "chmod 600"},
		"short":       {"abc\n", 0o600, "at least 16"},
		"white space": {"0123456789 abcdef\n", 0o600, "white space"},
	} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(tc.text), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tc.mode)
		f.operatorTokenFile = path
		got, _, err := f.resolveOperatorToken(false)
		switch {
		case tc.want == "" && (err != nil || got != strings.TrimSpace(tc.text)):
			t.Errorf("%s: %q, %v; want the file's token", name, got, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v; want an error saying %q", name, err, tc.want)
		}
	}
}
