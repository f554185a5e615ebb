package client

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestOptionTypes checks, for every option, which constructors accept it:
// a producer option is no consumer option and the other way round, and
// the common ones fit every client.
func TestOptionTypes(t *testing.T) {
	producer := reflect.TypeFor[ProducerOption]()
	push := reflect.TypeFor[PushConsumerOption]()
	pull := reflect.TypeFor[PullConsumerOption]()
	for _, tc := range []struct {
		name           string
		opt            any
		prod, psh, pll bool
	}{
		{"WithGroup", WithGroup("g"), true, true, true},
		{"WithCredentials", WithCredentials("a", "b"), true, true, true},
		{"WithTLS", WithTLS(nil), true, true, true},
		{"WithLogger", WithLogger(nopLogger{}), true, true, true},
		{"WithInstanceName", WithInstanceName("i"), true, true, true},
		{"WithHTTPClient", WithHTTPClient(nil), true, true, true},
		{"WithSendTimeout", WithSendTimeout(time.Second), true, true, true},
		{"Options", Options(WithGroup("g")), true, true, true},
		{"WithRetries", WithRetries(1), true, false, false},
		{"WithQueueSelector", WithQueueSelector(nil), true, false, false},
		{"WithIdempotence", WithIdempotence("p"), true, false, false},
		{"WithLinger", WithLinger(0), true, false, false},
		{"WithConsumeFromWhere", WithConsumeFromWhere(ConsumeFromFirstOffset), false, true, true},
		{"WithPullBatchSize", WithPullBatchSize(1), false, true, true},
		{"WithLongPollTimeout", WithLongPollTimeout(time.Second), false, true, true},
		{"WithOrderly", WithOrderly(true), false, true, false},
		{"WithConsumeGoroutines", WithConsumeGoroutines(1), false, true, false},
		{"WithMaxReconsumeTimes", WithMaxReconsumeTimes(1), false, true, false},
	} {
		typ := reflect.TypeOf(tc.opt)
		if got := typ.Implements(producer); got != tc.prod {
			t.Errorf("%s (%v): a producer option: %v, want %v", tc.name, typ, got, tc.prod)
		}
		if got := typ.Implements(push); got != tc.psh {
			t.Errorf("%s (%v): a push consumer option: %v, want %v", tc.name, typ, got, tc.psh)
		}
		if got := typ.Implements(pull); got != tc.pll {
			t.Errorf("%s (%v): a pull consumer option: %v, want %v", tc.name, typ, got, tc.pll)
		}
	}
}

// TestOptionMisuseDoesNotCompile builds a program that passes a producer
// option to a consumer and checks the compiler refuses it, next to the
// same program with a consumer option, which must build.
func TestOptionMisuseDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	build := func(opt string) (string, error) {
		dir := t.TempDir()
		gomod := "module optcheck\n\ngo 1.22\n\nrequire github.com/ferrymq/ferry v0.0.0\n\nreplace github.com/ferrymq/ferry => " + root + "\n"
		prog := "package main\n\nimport \"github.com/ferrymq/ferry/client\"\n\nfunc main() {\n\t_, _ = client.NewPullConsumer(\"127.0.0.1:9876\", client.WithGroup(\"g\"), " + opt + ")\n}\n"
		for name, body := range map[string]string{"go.mod": gomod, "main.go": prog} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(gobin, "build", "-mod=mod", "-o", os.DevNull, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := build("client.WithPullBatchSize(8)"); err != nil {
		t.Fatalf("a consumer option does not build: %v\n%s", err, out)
	}
	out, err := build("client.WithRetries(3)")
	if err == nil {
		t.Fatal("a producer option passed to a consumer builds")
	}
	if !strings.Contains(out, "PullConsumerOption") {
		t.Fatalf("the build failed for another reason:\n%s", out)
	}
}
