package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The operator token: the shared secret the operator actions (uploading
// and activating plugins) need until Wisp has real authentication. A node
// without one refuses those actions; it never leaves them open.

// operatorTokenFileName is the file `wispd dev` keeps its token in, in its
// --data-dir; the CLI run beside it reads it from there.
const operatorTokenFileName = "operator-token"

// maxTokenBytes bounds a token file; minTokenBytes is the shortest token
// accepted (a shared secret worth the name).
const (
	maxTokenBytes = 4 << 10
	minTokenBytes = 16
)

// resolveOperatorToken returns the token the nodes take: --operator-token, else
// --operator-token-file's; for `wispd dev` without either, the one in its
// data directory, made (mode 0600) on its first start. file is the one it
// came from or went to, for the banner ("" for the flag).
func (f *serverFlags) resolveOperatorToken(dev bool) (token, file string, err error) {
	switch {
	case f.operatorToken != "" && f.operatorTokenFile != "":
		return "", "", errors.New("give --operator-token or --operator-token-file, not both")
	case f.operatorToken != "":
		if len(f.operatorToken) < minTokenBytes {
			return "", "", fmt.Errorf("--operator-token: %d bytes; want at least %d", len(f.operatorToken), minTokenBytes)
		}
		return f.operatorToken, "", nil
	case f.operatorTokenFile != "":
		token, err := readTokenFile(f.operatorTokenFile)
		if err != nil {
			return "", "", fmt.Errorf("--operator-token-file: %w", err)
		}
		return token, f.operatorTokenFile, nil
	case !dev:
		return "", "", nil
	}
	path := filepath.Join(f.dataDir, operatorTokenFileName)
	token, err = readTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		token, err = newTokenFile(path)
	}
	if err != nil {
		return "", "", fmt.Errorf("dev operator token: %w", err)
	}
	return token, path, nil
}

// readTokenFile reads a token file, which only its owner may read.
func readTokenFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %#o lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	token := strings.TrimSpace(string(b))
	switch {
	case len(b) > maxTokenBytes:
		return "", fmt.Errorf("%s: over %d bytes", path, maxTokenBytes)
	case len(token) < minTokenBytes:
		return "", fmt.Errorf("%s: a token of %d bytes; want at least %d", path, len(token), minTokenBytes)
	case strings.ContainsAny(token, " \t\r\n"):
		return "", fmt.Errorf("%s: the token has white space in it", path)
	}
	return token, nil
}

// newTokenFile makes a random token (32 bytes, base64url) and writes it to
// path, readable by its owner only.
func newTokenFile(path string) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := fmt.Fprintln(fh, token); err != nil {
		fh.Close()
		return "", err
	}
	return token, fh.Close()
}
