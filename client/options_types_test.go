package client

import (
	"go/ast"
	"go/parser"
	"go/token"
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
// a producer option is no consumer option and the other way round, a push
// consumer's option is no pull consumer's, and the common ones fit every
// client. Every option function of the package must be in the table.
func TestOptionTypes(t *testing.T) {
	producer := reflect.TypeFor[ProducerOption]()
	push := reflect.TypeFor[PushConsumerOption]()
	pull := reflect.TypeFor[PullConsumerOption]()
	const all, prod, cons, psh = "all", "producer", "consumer", "push"
	fits := map[string][3]bool{ // producer, push consumer, pull consumer
		all: {true, true, true}, prod: {true, false, false}, cons: {false, true, true}, psh: {false, true, false},
	}
	table := []struct {
		name   string
		opt    any
		takers string
	}{
		{"Options", Options(WithGroup("g")), all},
		{"WithGroup", WithGroup("g"), all},
		{"WithCredentials", WithCredentials("a", "b"), all},
		{"WithRequestSigning", WithRequestSigning(), all},
		{"WithTLS", WithTLS(nil), all},
		{"WithLogger", WithLogger(nopLogger{}), all},
		{"WithInstanceName", WithInstanceName("i"), all},
		{"WithHTTPClient", WithHTTPClient(nil), all},
		{"WithSendTimeout", WithSendTimeout(time.Second), all},
		{"WithHeartbeatInterval", WithHeartbeatInterval(time.Second), all},
		{"WithRouteRefreshInterval", WithRouteRefreshInterval(time.Second), all},

		{"WithRetries", WithRetries(1), prod},
		{"WithLinger", WithLinger(0), prod},
		{"WithMaxInFlight", WithMaxInFlight(1), prod},
		{"WithFailWhenBufferFull", WithFailWhenBufferFull(true), prod},
		{"WithBatchSize", WithBatchSize(1), prod},
		{"WithMaxBatchBytes", WithMaxBatchBytes(1 << 20), prod},
		{"WithMaxBufferedBytes", WithMaxBufferedBytes(1 << 20), prod},
		{"WithMaxMessageSize", WithMaxMessageSize(1 << 20), prod},
		{"WithQueueSelector", WithQueueSelector(nil), prod},
		{"WithIdempotence", WithIdempotence("p"), prod},
		{"WithTransactionChecker", WithTransactionChecker(nil), prod},

		{"WithConsumeFromWhere", WithConsumeFromWhere(ConsumeFromFirstOffset), cons},
		{"WithPullBatchSize", WithPullBatchSize(1), cons},

		{"WithConsumeTimestamp", WithConsumeTimestamp(time.Now()), psh},
		{"WithMaxCachedMessagesPerQueue", WithMaxCachedMessagesPerQueue(1), psh},
		{"WithMaxCachedBytesPerQueue", WithMaxCachedBytesPerQueue(1), psh},
		{"WithOrderly", WithOrderly(true), psh},
		{"WithBroadcast", WithBroadcast(true), psh},
		{"WithBroadcastOffsetDir", WithBroadcastOffsetDir(""), psh},
		{"WithConsumeGoroutines", WithConsumeGoroutines(1), psh},
		{"WithConsumeBatchSize", WithConsumeBatchSize(1), psh},
		{"WithMaxReconsumeTimes", WithMaxReconsumeTimes(1), psh},
		{"WithLongPollTimeout", WithLongPollTimeout(time.Second), psh},
		{"WithSuspendInterval", WithSuspendInterval(time.Second), psh},
		{"WithVisibilityTimeout", WithVisibilityTimeout(time.Second), psh},
		{"WithRebalanceInterval", WithRebalanceInterval(time.Second), psh},
		{"WithCommitInterval", WithCommitInterval(time.Second), psh},
	}
	listed := map[string]bool{}
	for _, tc := range table {
		listed[tc.name] = true
		want := fits[tc.takers]
		typ := reflect.TypeOf(tc.opt)
		for i, iface := range []reflect.Type{producer, push, pull} {
			if got := typ.Implements(iface); got != want[i] {
				t.Errorf("%s (%v): a %v: %v, want %v", tc.name, typ, iface.Name(), got, want[i])
			}
		}
	}
	for _, name := range optionFuncs(t) {
		if !listed[name] {
			t.Errorf("option %s is not in TestOptionTypes' table: say which clients take it", name)
		}
	}
}

// optionFuncs lists the package's exported functions that return an
// option type.
func optionFuncs(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	optTypes := map[string]bool{"CommonOpt": true, "ProducerOpt": true, "ConsumerOpt": true, "PushOpt": true}
	var out []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !fd.Name.IsExported() || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fd.Type.Results.List[0].Type.(*ast.Ident); ok && optTypes[id.Name] {
				out = append(out, fd.Name.Name)
			}
		}
	}
	if len(out) < 30 {
		t.Fatalf("found only %d option functions: %v", len(out), out)
	}
	return out
}

// TestOptionMisuseDoesNotCompile builds a program that passes a producer
// option, and one that passes a push consumer's option, to a pull consumer
// and checks the compiler refuses them, next to the same program with a
// consumer option, which must build.
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
	for what, opt := range map[string]string{
		"a producer option":        "client.WithRetries(3)",
		"a push consumer's option": "client.WithOrderly(true)",
	} {
		out, err := build(opt)
		if err == nil {
			t.Fatalf("%s passed to a pull consumer builds", what)
		}
		if !strings.Contains(out, "PullConsumerOption") {
			t.Fatalf("the build with %s failed for another reason:\n%s", what, out)
		}
	}
}

// TestOptListBuildsAProducer: code written before options were typed per
// client builds a producer's options as a []client.Opt, mixing common and
// producer options; it still compiles and the options take effect.
func TestOptListBuildsAProducer(t *testing.T) {
	var opts []Opt
	opts = append(opts, WithGroup("g"), WithLinger(3*time.Millisecond))
	p, err := NewProducer("127.0.0.1:9876", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.cfg.linger != 3*time.Millisecond || p.cfg.group != "g" {
		t.Fatalf("linger %v, group %q: the options of the list were not applied", p.cfg.linger, p.cfg.group)
	}
}
