package raftgroup

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger bridges hashicorp/raft's hclog output into slog.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hclog.Info,
		Output:          slogWriter{l},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter turns hclog's text lines ("[INFO]  raft: message: k=v") into
// slog records at the matching level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, m := range []struct {
		tag   string
		level slog.Level
	}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}} {
		if bytes.HasPrefix(line, []byte(m.tag)) {
			level = m.level
			line = bytes.TrimSpace(line[len(m.tag):])
			break
		}
	}
	w.l.Log(context.Background(), level, string(line), "component", "raft")
	return len(p), nil
}
