package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// HCLogger adapts logger to hclog.Logger, the interface raft logs through.
func HCLogger(logger *slog.Logger) hclog.Logger {
	return &hcAdapter{logger: logger}
}

type hcAdapter struct {
	logger *slog.Logger
	name   string
	args   []any
}

func toSlog(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *hcAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	h.logger.Log(context.Background(), toSlog(level), msg, args...)
}
func (h *hcAdapter) Trace(msg string, args ...interface{}) { h.Log(hclog.Trace, msg, args...) }
func (h *hcAdapter) Debug(msg string, args ...interface{}) { h.Log(hclog.Debug, msg, args...) }
func (h *hcAdapter) Info(msg string, args ...interface{})  { h.Log(hclog.Info, msg, args...) }
func (h *hcAdapter) Warn(msg string, args ...interface{})  { h.Log(hclog.Warn, msg, args...) }
func (h *hcAdapter) Error(msg string, args ...interface{}) { h.Log(hclog.Error, msg, args...) }

func (h *hcAdapter) enabled(l hclog.Level) bool {
	return h.logger.Enabled(context.Background(), toSlog(l))
}
func (h *hcAdapter) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcAdapter) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcAdapter) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcAdapter) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcAdapter) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcAdapter) ImpliedArgs() []interface{} { return h.args }

func (h *hcAdapter) With(args ...interface{}) hclog.Logger {
	return &hcAdapter{logger: h.logger.With(args...), name: h.name, args: append(append([]any{}, h.args...), args...)}
}

func (h *hcAdapter) Name() string { return h.name }

func (h *hcAdapter) Named(name string) hclog.Logger {
	full := name
	if h.name != "" {
		full = h.name + "." + name
	}
	return h.ResetNamed(full)
}

func (h *hcAdapter) ResetNamed(name string) hclog.Logger {
	return &hcAdapter{logger: h.logger.With("component", name), name: name, args: h.args}
}

// SetLevel is a no-op: the slog handler decides what is written.
func (h *hcAdapter) SetLevel(hclog.Level) {}

func (h *hcAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (h *hcAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return StdLogger(h.logger)
}

func (h *hcAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return stdWriter{h.logger}
}
