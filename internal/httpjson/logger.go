package httpjson

import (
	"context"
	"log/slog"
)

// requestLogger is what WithLogger puts in a request's context: the logger
// and the attributes to add if WriteError ever logs (rarely: internal
// errors only, so the With is not paid on every request).
type requestLogger struct {
	logger *slog.Logger
	attrs  []any
}

func contextWithLogger(ctx context.Context, logger *slog.Logger, attrs []any) context.Context {
	return context.WithValue(ctx, loggerKey{}, requestLogger{logger: logger, attrs: attrs})
}

func loggerFrom(ctx context.Context) *slog.Logger {
	if rl, ok := ctx.Value(loggerKey{}).(requestLogger); ok {
		if len(rl.attrs) > 0 {
			return rl.logger.With(rl.attrs...)
		}
		return rl.logger
	}
	return slog.Default()
}
