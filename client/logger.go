package client

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// LogLevel orders log messages.
type LogLevel int8

// Log levels, least to most severe; LogNone turns logging off.
const (
	LogNone LogLevel = iota
	LogError
	LogWarn
	LogInfo
	LogDebug
)

func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "ERROR"
	case LogWarn:
		return "WARN"
	case LogInfo:
		return "INFO"
	case LogDebug:
		return "DEBUG"
	}
	return "NONE"
}

// Logger receives the clients' log messages. Level is asked before each
// message is built, so a disabled level costs nothing. kv holds
// alternating keys and values; keys use fixed names (topic, queue_id,
// offset, group, msg_id, broker, err).
type Logger interface {
	Level() LogLevel
	Log(level LogLevel, msg string, kv ...any)
}

type nopLogger struct{}

func (nopLogger) Level() LogLevel              { return LogNone }
func (nopLogger) Log(LogLevel, string, ...any) {}

// NewBasicLogger returns a Logger writing one line per message to w, up
// to and including level. It is safe for concurrent use.
func NewBasicLogger(w io.Writer, level LogLevel) Logger {
	return &basicLogger{w: w, level: level}
}

type basicLogger struct {
	mu    sync.Mutex
	w     io.Writer
	level LogLevel
}

func (l *basicLogger) Level() LogLevel { return l.level }

func (l *basicLogger) Log(level LogLevel, msg string, kv ...any) {
	var b strings.Builder
	b.WriteString(time.Now().Format("2006-01-02T15:04:05.000Z07:00"))
	b.WriteByte(' ')
	b.WriteString(level.String())
	b.WriteByte(' ')
	b.WriteString(msg)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	b.WriteByte('\n')
	l.mu.Lock()
	_, _ = io.WriteString(l.w, b.String())
	l.mu.Unlock()
}

// logf logs when the logger's level allows it.
func logAt(l Logger, level LogLevel, msg string, kv ...any) {
	if l.Level() >= level {
		l.Log(level, msg, kv...)
	}
}
