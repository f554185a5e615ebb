package acl

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"github.com/ferrymq/ferry/protocol"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/remoting"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sampleFile is RocketMQ 4.x's distributed plain_acl.yml, with one more
// account.
const sampleFile = `
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      # the group should convert to retry topic
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB

  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    # if it is admin, it could access all resources
    admin: true

  - accessKey: producer1
    secretKey: producer-secret
    defaultTopicPerm: PUB
dataVersion:
  - counter: 1
    timestamp: 1600000000000
`

func mustParse(t testing.TB, s string) *Rules {
	t.Helper()
	r, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseSample(t *testing.T) {
	r := mustParse(t, sampleFile)
	if r.Accounts() != 3 {
		t.Fatalf("accounts = %d", r.Accounts())
	}
	a, _ := r.Account("RocketMQ")
	if a.Admin || a.DefaultTopicPerm != Deny || a.DefaultGroupPerm != Sub {
		t.Fatalf("RocketMQ account: %+v", a)
	}
	if a.topics["topicB"] != Pub|Sub || a.topics["topicA"] != Deny || a.groups["groupC"] != Sub {
		t.Fatalf("perms: %v %v", a.topics, a.groups)
	}
	p, _ := r.Account("producer1")
	if p.DefaultGroupPerm != Deny {
		t.Fatalf("absent defaultGroupPerm must be DENY, got %v", p.DefaultGroupPerm)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"short key", "accounts:\n - accessKey: abc\n   secretKey: 12345678\n", "longer than 6"},
		{"short secret", "accounts:\n - accessKey: abcdefg\n   secretKey: 123\n", "secretKey must be longer"},
		{"bad perm entry", "accounts:\n - accessKey: abcdefg\n   secretKey: 12345678\n   topicPerms: [TopicA]\n", "NAME=PERM"},
		{"bad address", "accounts:\n - accessKey: abcdefg\n   secretKey: 12345678\n   whiteRemoteAddress: 300.1.1.1\n", "whiteRemoteAddress"},
		{"bad global", "globalWhiteRemoteAddresses: [1.2.3.4-x]\n", "globalWhiteRemoteAddresses[0]"},
		{"duplicate", "accounts:\n - {accessKey: abcdefg, secretKey: 12345678}\n - {accessKey: abcdefg, secretKey: 87654321}\n", "defined twice"},
		{"not yaml", "accounts: [", "acl:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "12345678") || strings.Contains(err.Error(), "87654321") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
	if r, err := Parse(nil); err != nil || r.Accounts() != 0 {
		t.Fatalf("empty file: %v %v", r, err)
	}
}

func TestParsePerm(t *testing.T) {
	for in, want := range map[string]Perm{"PUB": Pub, "SUB": Sub, " PUB|SUB ": Pub | Sub, "SUB|PUB": Pub | Sub, "DENY": Deny, "ANY": Deny, "": Deny, "pub": Deny} {
		if got := ParsePerm(in); got != want {
			t.Errorf("ParsePerm(%q) = %v, want %v", in, got, want)
		}
	}
	for _, tc := range []struct {
		owned, needed Perm
		ok            bool
	}{
		{Pub, Pub, true}, {Pub, Sub, false}, {Sub, Sub, true}, {Pub | Sub, Sub, true},
		{Deny | Pub, Pub, false}, {Pub, Any, true}, {Sub, Any, true}, {Deny, Any, false},
	} {
		if got := tc.owned.Allows(tc.needed); got != tc.ok {
			t.Errorf("%v.Allows(%v) = %v", tc.owned, tc.needed, got)
		}
	}
}

func TestAddrPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes, no []string
	}{
		{"", nil, []string{"1.2.3.4"}},
		{"*", []string{"1.2.3.4", "::1"}, nil},
		{"*.*.*.*", []string{"8.8.8.8"}, nil},
		{"192.168.0.*", []string{"192.168.0.1", "192.168.0.255"}, []string{"192.168.1.1"}},
		{"192.168.*.*", []string{"192.168.9.9"}, []string{"192.169.0.1"}},
		{"192.168.1-10.*", []string{"192.168.1.7", "192.168.10.0"}, []string{"192.168.11.1", "192.168.0.1"}},
		{"192.168.0.5-50", []string{"192.168.0.5", "192.168.0.50"}, []string{"192.168.0.4", "192.168.0.51"}},
		{"192.168.1.{1,2,3}", []string{"192.168.1.1", "192.168.1.3"}, []string{"192.168.1.4"}},
		{"192.168.1.1,192.168.1.2", []string{"192.168.1.2"}, []string{"192.168.1.3"}},
		{"127.0.0.1", []string{"127.0.0.1", "::ffff:127.0.0.1"}, []string{"127.0.0.2"}},
		{"::1", []string{"::1"}, []string{"127.0.0.1"}},
	} {
		m, err := parseAddrPattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		for _, s := range tc.yes {
			if !m.match(netip.MustParseAddr(s)) {
				t.Errorf("%q should match %s", tc.pattern, s)
			}
		}
		for _, s := range tc.no {
			if m.match(netip.MustParseAddr(s)) {
				t.Errorf("%q should not match %s", tc.pattern, s)
			}
		}
	}
	for _, bad := range []string{"1.2.3", "192.168.*.1", "*.1.1.1", "1.2.3.300-400", "1.2.3.{a,b}", "1.2.3.4,x", "host.example", "1.2.3.9-2", "1:2:*::1"} {
		if _, err := parseAddrPattern(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// goClientSign is the official Go client's ACLInterceptor signing, written
// out independently of remoting.Credentials.Sign: the AccessKey and the
// extension fields in key order, then the body; SecurityToken is added
// after signing and not signed.
func goClientSign(ext map[string]string, body []byte, ak, sk, token string) {
	m := map[string]string{"AccessKey": ak}
	order := []string{"AccessKey"}
	for k, v := range ext {
		m[k] = v
		order = append(order, k)
	}
	sort.Strings(order)
	content := ""
	for _, k := range order {
		content += m[k]
	}
	mac := hmac.New(sha1.New, []byte(sk))
	mac.Write(append([]byte(content), body...))
	ext["Signature"] = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	ext["AccessKey"] = ak
	if token != "" {
		ext["SecurityToken"] = token
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")

func TestAuthenticateGoClientSignatures(t *testing.T) {
	r := mustParse(t, sampleFile)
	for _, token := range []string{"", "session-token"} {
		ext := map[string]string{"a": "group", "b": "topicB", "i": "TAGS\x01x\x02"}
		body := []byte("hello")
		goClientSign(ext, body, "RocketMQ", "12345678", token)
		id, err := r.Authenticate(loopback, ext, body)
		if err != nil || id.Account == nil || id.Account.AccessKey != "RocketMQ" {
			t.Fatalf("token %q: %v %+v", token, err, id)
		}
		// One changed byte of the body fails.
		if _, err := r.Authenticate(loopback, ext, []byte("hellO")); err == nil || err.(*Refusal).Check != "signature" {
			t.Fatalf("altered body: %v", err)
		}
	}
	// Ferry's own signing (Java's rule: the token is signed too).
	req := remoting.NewRequest(protocol.ReqPullMessage, map[string]string{"topic": "t"}, []byte("x"))
	remoting.Credentials{AccessKey: "RocketMQ", SecretKey: "12345678", SecurityToken: "tok"}.Sign(req)
	if _, err := r.Authenticate(loopback, req.ExtFields, req.Body); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	r := mustParse(t, sampleFile)
	signed := func(ak, sk string) map[string]string {
		ext := map[string]string{"topic": "t"}
		goClientSign(ext, nil, ak, sk, "")
		return ext
	}
	for _, tc := range []struct {
		name  string
		ext   map[string]string
		check string
	}{
		{"no credentials", map[string]string{"topic": "t"}, "unsigned"},
		{"unknown key", signed("nobody-here", "12345678"), "unknown-key"},
		{"wrong secret", signed("RocketMQ", "wrong-secret"), "signature"},
		{"no signature", map[string]string{"AccessKey": "RocketMQ"}, "unsigned"},
		{"short signature", map[string]string{"AccessKey": "RocketMQ", "Signature": "x"}, "signature"},
	} {
		_, err := r.Authenticate(loopback, tc.ext, nil)
		ref, ok := err.(*Refusal)
		if !ok || ref.Check != tc.check {
			t.Errorf("%s: %v, want check %s", tc.name, err, tc.check)
			continue
		}
		if strings.Contains(ref.Detail, "12345678") || strings.Contains(ref.Detail, "wrong-secret") {
			t.Errorf("%s: remark leaks a secret: %s", tc.name, ref.Detail)
		}
	}
	// White lists: global admits anything, the account's own skips the
	// signature.
	if id, err := r.Authenticate(netip.MustParseAddr("10.10.103.7"), map[string]string{}, nil); err != nil || !id.Trusted {
		t.Fatalf("global white list: %v", err)
	}
	if id, err := r.Authenticate(netip.MustParseAddr("192.168.1.9"), map[string]string{"AccessKey": "rocketmq2"}, nil); err != nil || !id.Trusted {
		t.Fatalf("account white list: %v", err)
	}
}

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plain_acl.yml")
	write := func(s string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(sampleFile)
	var logs syncBuf
	w, err := Watch(path, 5*time.Millisecond, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first := w.Rules()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if err := poll.Until(context.Background(), 5*time.Second, 2*time.Millisecond, cond); err != nil {
			t.Fatalf("timed out waiting for %s; log: %s", what, logs.String())
		}
	}
	write("accounts: [")
	waitFor("the failed reload to be logged", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if w.Rules() != first {
		t.Fatal("a broken file replaced the rules")
	}
	write("accounts:\n - {accessKey: newkey1, secretKey: newsecret}\n")
	waitFor("the reload", func() bool { _, ok := w.Rules().Account("newkey1"); return ok })
	if !strings.Contains(logs.String(), "acl: reloaded") {
		t.Fatalf("reload not logged: %s", logs.String())
	}
	if _, err := Watch(filepath.Join(dir, "missing.yml"), 0, zerolog.Nop()); err == nil {
		t.Fatal("a missing file must fail at start")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuditRateLimit(t *testing.T) {
	var logs syncBuf
	a := NewAudit(zerolog.New(&logs), 2)
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	for range 5 {
		a.Refused("k", "1.2.3.4:5", "remoting", "PULL_MESSAGE", "signature", "bad")
	}
	if n := strings.Count(logs.String(), "request refused"); n != 2 {
		t.Fatalf("%d lines in the first second, want 2", n)
	}
	now = now.Add(2 * time.Second)
	a.Refused("k", "1.2.3.4:5", "remoting", "PULL_MESSAGE", "signature", "bad")
	if !strings.Contains(logs.String(), `"suppressed":3`) {
		t.Fatalf("suppressed count missing: %s", logs.String())
	}
	a.Admin("admin-key", "1.2.3.4:5", "http", "DELETE /v1/topics/x")
	if !strings.Contains(logs.String(), `"account":"admin-key"`) {
		t.Fatal(logs.String())
	}
	var nilAudit *Audit
	nilAudit.Refused("", "", "", "", "", "")
	nilAudit.Admin("", "", "", "")
}
