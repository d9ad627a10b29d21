package servicetest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// LogBuffer is a concurrency-safe destination for the log output a test
// makes assertions on. The zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count counts the occurrences of s in what was written.
func (l *LogBuffer) Count(s string) int { return strings.Count(l.String(), s) }

// Logger returns a text logger at debug level writing to l.
func (l *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
