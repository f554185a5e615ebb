// Package zslog hands a zerolog logger to code that logs through log/slog
// (the remoting transport, which the SDK shares and which therefore links
// no logging library of its own).
package zslog

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// New returns a slog.Logger that writes to l with l's level and format.
func New(l zerolog.Logger) *slog.Logger { return slog.New(handler{l: l}) }

type handler struct {
	l      zerolog.Logger
	prefix string // group names joined with dots, each followed by a dot
}

func level(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.InfoLevel
	}
	return zerolog.DebugLevel
}

func (h handler) Enabled(_ context.Context, l slog.Level) bool {
	zl := level(l)
	return zl >= h.l.GetLevel() && zl >= zerolog.GlobalLevel()
}

func (h handler) Handle(_ context.Context, r slog.Record) error {
	e := h.l.WithLevel(level(r.Level))
	if e == nil {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(e, h.prefix, a)
		return true
	})
	e.Msg(r.Message)
	return nil
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := h.l.With()
	for _, a := range attrs {
		c = addContext(c, h.prefix, a)
	}
	return handler{l: c.Logger(), prefix: h.prefix}
}

func (h handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return handler{l: h.l, prefix: h.prefix + name + "."}
}

func addAttr(e *zerolog.Event, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	k := prefix + a.Key
	switch v.Kind() {
	case slog.KindString:
		e.Str(k, v.String())
	case slog.KindInt64:
		e.Int64(k, v.Int64())
	case slog.KindUint64:
		e.Uint64(k, v.Uint64())
	case slog.KindFloat64:
		e.Float64(k, v.Float64())
	case slog.KindBool:
		e.Bool(k, v.Bool())
	case slog.KindDuration:
		e.Dur(k, v.Duration())
	case slog.KindTime:
		e.Time(k, v.Time())
	case slog.KindGroup:
		for _, g := range v.Group() {
			addAttr(e, k+".", g)
		}
	default:
		if err, ok := v.Any().(error); ok {
			e.AnErr(k, err)
		} else {
			e.Interface(k, v.Any())
		}
	}
}

func addContext(c zerolog.Context, prefix string, a slog.Attr) zerolog.Context {
	v := a.Value.Resolve()
	k := prefix + a.Key
	switch v.Kind() {
	case slog.KindString:
		return c.Str(k, v.String())
	case slog.KindInt64:
		return c.Int64(k, v.Int64())
	case slog.KindUint64:
		return c.Uint64(k, v.Uint64())
	case slog.KindFloat64:
		return c.Float64(k, v.Float64())
	case slog.KindBool:
		return c.Bool(k, v.Bool())
	case slog.KindDuration:
		return c.Dur(k, v.Duration())
	case slog.KindTime:
		return c.Time(k, v.Time())
	case slog.KindGroup:
		for _, g := range v.Group() {
			c = addContext(c, k+".", g)
		}
		return c
	}
	return c.Interface(k, v.Any())
}
