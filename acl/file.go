package acl

import (
	"crypto/hmac"
	"crypto/sha1"
	"fmt"
	"hash"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// fileFormat is plain_acl.yml as RocketMQ 4.x writes it. Unknown keys
// (dataVersion, ...) are ignored, as RocketMQ ignores them.
type fileFormat struct {
	GlobalWhiteRemoteAddresses []string        `yaml:"globalWhiteRemoteAddresses"`
	Accounts                   []accountFormat `yaml:"accounts"`
}

type accountFormat struct {
	AccessKey          string   `yaml:"accessKey"`
	SecretKey          string   `yaml:"secretKey"`
	WhiteRemoteAddress string   `yaml:"whiteRemoteAddress"`
	Admin              bool     `yaml:"admin"`
	DefaultTopicPerm   *string  `yaml:"defaultTopicPerm"`
	DefaultGroupPerm   *string  `yaml:"defaultGroupPerm"`
	TopicPerms         []string `yaml:"topicPerms"`
	GroupPerms         []string `yaml:"groupPerms"`
}

// MinKeyLen is one more than the longest access or secret key RocketMQ
// refuses: keys must be longer than 6 characters.
const MinKeyLen = 7

// RetryPrefix starts the retry topic of a group; a group's permissions are
// the permissions on its retry topic (part of RocketMQ's meaning).
const RetryPrefix = "%RETRY%"

// Rules are the accounts and white lists of one ACL file. A Rules is
// immutable once built and safe for concurrent use.
type Rules struct {
	global   []addrMatcher
	accounts map[string]*Account
}

// Account is one entry of accounts.
type Account struct {
	AccessKey        string
	Admin            bool
	DefaultTopicPerm Perm
	DefaultGroupPerm Perm

	secret []byte
	white  addrMatcher
	topics map[string]Perm // by topic name
	groups map[string]Perm // by group name (without %RETRY%)
	macs   sync.Pool       // of hash.Hash: HMAC-SHA1 keyed with secret
}

// Accounts returns the number of accounts.
func (r *Rules) Accounts() int { return len(r.accounts) }

// Account returns the account of an access key.
func (r *Rules) Account(accessKey string) (*Account, bool) {
	a, ok := r.accounts[accessKey]
	return a, ok
}

// Parse reads a plain_acl.yml document. Every account needs an accessKey
// and a secretKey longer than 6 characters; topicPerms and groupPerms
// entries are NAME=PERM; address patterns follow RocketMQ (see
// parseAddrPattern). Absent default permissions are DENY, as in RocketMQ.
// An empty document has no accounts (every request is refused unless its
// address is white-listed).
func Parse(data []byte) (*Rules, error) {
	var f fileFormat
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	r := &Rules{accounts: make(map[string]*Account, len(f.Accounts))}
	for i, s := range f.GlobalWhiteRemoteAddresses {
		m, err := parseAddrPattern(s)
		if err != nil {
			return nil, fmt.Errorf("acl: globalWhiteRemoteAddresses[%d]: %w", i, err)
		}
		r.global = append(r.global, m)
	}
	for i, af := range f.Accounts {
		a, err := buildAccount(af)
		if err != nil {
			return nil, fmt.Errorf("acl: accounts[%d]: %w", i, err)
		}
		if _, dup := r.accounts[a.AccessKey]; dup {
			return nil, fmt.Errorf("acl: accounts[%d]: accessKey %q is defined twice", i, a.AccessKey)
		}
		r.accounts[a.AccessKey] = a
	}
	return r, nil
}

func buildAccount(af accountFormat) (*Account, error) {
	if len(af.AccessKey) < MinKeyLen {
		return nil, fmt.Errorf("accessKey %q must be longer than 6 characters", af.AccessKey)
	}
	if len(af.SecretKey) < MinKeyLen {
		// The secret itself is never quoted in an error.
		return nil, fmt.Errorf("accessKey %q: secretKey must be longer than 6 characters", af.AccessKey)
	}
	white, err := parseAddrPattern(af.WhiteRemoteAddress)
	if err != nil {
		return nil, fmt.Errorf("accessKey %q: whiteRemoteAddress: %w", af.AccessKey, err)
	}
	a := newAccount(af.AccessKey, af.SecretKey)
	a.Admin, a.white = af.Admin, white
	if af.DefaultTopicPerm != nil {
		a.DefaultTopicPerm = ParsePerm(*af.DefaultTopicPerm)
	}
	if af.DefaultGroupPerm != nil {
		a.DefaultGroupPerm = ParsePerm(*af.DefaultGroupPerm)
	}
	if a.topics, err = parseResourcePerms("topicPerms", af.TopicPerms); err != nil {
		return nil, fmt.Errorf("accessKey %q: %w", af.AccessKey, err)
	}
	if a.groups, err = parseResourcePerms("groupPerms", af.GroupPerms); err != nil {
		return nil, fmt.Errorf("accessKey %q: %w", af.AccessKey, err)
	}
	return a, nil
}

// newAccount is an account with no permissions beyond its defaults (DENY)
// and no white-listed address.
func newAccount(accessKey, secretKey string) *Account {
	secret := []byte(secretKey)
	a := &Account{AccessKey: accessKey, DefaultTopicPerm: Deny, DefaultGroupPerm: Deny, secret: secret, white: matchNone{}}
	a.macs.New = func() any { return hmac.New(sha1.New, secret) }
	return a
}

// parseResourcePerms reads "NAME=PERM" entries (Java splits on '=' and
// drops empty parts; exactly two must remain).
func parseResourcePerms(field string, entries []string) (map[string]Perm, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	m := make(map[string]Perm, len(entries))
	for _, e := range entries {
		parts := strings.FieldsFunc(e, func(r rune) bool { return r == '=' })
		if len(parts) != 2 {
			return nil, fmt.Errorf("%s entry %q: want NAME=PERM such as TopicA=PUB|SUB", field, e)
		}
		m[strings.TrimSpace(parts[0])] = ParsePerm(parts[1])
	}
	return m, nil
}

// mac returns a keyed HMAC-SHA1 from the account's pool; put it back with
// a.macs.Put.
func (a *Account) mac() hash.Hash {
	h := a.macs.Get().(hash.Hash)
	h.Reset()
	return h
}
