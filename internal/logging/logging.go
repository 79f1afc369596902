package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
)

// New returns a logger writing to w in format "json" or "text" at level
// ("debug", "info", "warn", "error").
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("unknown log format %q (want json or text)", format)
	}
}

// ParseLevel parses a level name.
func ParseLevel(s string) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return lvl, nil
}

// StdLogger returns a *log.Logger whose lines go to logger. Lines that start
// with a level marker such as "[DEBUG]" or "[WARN]" (memberlist's style) are
// logged at that level with the marker removed.
func StdLogger(logger *slog.Logger) *log.Logger {
	return log.New(stdWriter{logger}, "", 0)
}

type stdWriter struct{ logger *slog.Logger }

var levelMarkers = []struct {
	marker string
	level  slog.Level
}{
	{"[TRACE]", slog.LevelDebug - 4},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

func (w stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelInfo
	for _, lm := range levelMarkers {
		if strings.HasPrefix(msg, lm.marker) {
			level = lm.level
			msg = strings.TrimSpace(strings.TrimPrefix(msg, lm.marker))
			break
		}
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}
