// Package apitest holds what the tests of the broker and of its HTTP API
// share: an ACL file, a log sink, connection checks and the import graph
// of a package.
package apitest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ACL is an ACL file (plain_acl.yml format) with an admin account
// (admin-key / admin-secret) and an account allowed to publish to and
// subscribe to topic T and to consume as group G (user-key /
// user-secret).
const ACL = `
accounts:
  - accessKey: admin-key
    secretKey: admin-secret
    admin: true
  - accessKey: user-key
    secretKey: user-secret
    topicPerms: [T=PUB|SUB]
    groupPerms: [G=SUB]
`

// ACLFile writes ACL to a file in a temporary directory and returns its
// path.
func ACLFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plain_acl.yml")
	if err := os.WriteFile(path, []byte(ACL), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Deps lists the non-standard packages pkg links (go list -deps), run
// from the calling test's package directory.
func Deps(t testing.TB, pkg string) []string {
	t.Helper()
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(bin); err != nil {
		bin = "go"
	}
	out, err := exec.Command(bin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// LogSink keeps a logger's lines (zerolog writes one per Write).
type LogSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *LogSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *LogSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

// ClosedWithin reports whether the server closes c within d, and when.
func ClosedWithin(c net.Conn, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	for {
		_, err := c.Read(make([]byte, 4096))
		if err != nil {
			return time.Since(start), errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		}
	}
}

// Dial connects to addr, closing the connection with the test.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CheckPerAddrLimit checks a port (named port in the log) whose limit is
// two connections from one address: a third from 127.0.0.1 is closed at
// once (refused, when not nil, checks what it was told first), one from
// 127.0.0.2 is kept, and logs has the refusal.
func CheckPerAddrLimit(t testing.TB, addr, port string, logs fmt.Stringer, refused func(net.Conn)) {
	t.Helper()
	Dial(t, addr)
	Dial(t, addr)
	third := Dial(t, addr)
	if refused != nil {
		refused(third)
	}
	if _, closed := ClosedWithin(third, 5*time.Second); !closed {
		t.Fatalf("%s: a third connection from one address was kept (limit 2)", port)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, closed := ClosedWithin(other, 200*time.Millisecond); closed {
		t.Fatalf("%s: a connection from another address was refused", port)
	}
	if !strings.Contains(logs.String(), `"port":"`+port+`"`) ||
		!strings.Contains(logs.String(), "connection refused: too many connections from one address") {
		t.Fatalf("%s: no refusal line:\n%s", port, logs.String())
	}
}

// EnvInt reads a benchmark's setting from the environment variable key:
// a positive integer, def when unset.
func EnvInt(b testing.TB, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}
