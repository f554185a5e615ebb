package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TopicConfig is a topic as the broker keeps it.
type TopicConfig = remoting.TopicConfig

// Errors of topic and group management.
var (
	ErrTopicNotFound  = errors.New("broker: topic does not exist")
	ErrTopicInvalid   = errors.New("broker: invalid topic name")
	ErrTopicSystem    = errors.New("broker: system topic")
	ErrGroupNotFound  = errors.New("broker: consumer group does not exist")
	ErrGroupInvalid   = errors.New("broker: invalid group name")
	ErrInvalidRequest = errors.New("broker: invalid request")
)

// ValidateTopic checks a topic name as RocketMQ does: ^[%|a-zA-Z0-9_-]+$,
// at most 127 bytes (the stored record has one byte of topic length).
func ValidateTopic(t string) error {
	if t == "" || len(t) > protocol.MaxTopicLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters", ErrTopicInvalid, t, protocol.MaxTopicLen)
	}
	if !validChars(t) {
		return fmt.Errorf("%w: %q may contain only letters, digits, '%%', '|', '-' and '_'", ErrTopicInvalid, t)
	}
	return nil
}

// ValidateGroup checks a group name (same characters, at most 255).
func ValidateGroup(g string) error {
	if g == "" || len(g) > protocol.MaxGroupLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters", ErrGroupInvalid, g, protocol.MaxGroupLen)
	}
	if !validChars(g) {
		return fmt.Errorf("%w: %q may contain only letters, digits, '%%', '|', '-' and '_'", ErrGroupInvalid, g)
	}
	return nil
}

func validChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '%' || c == '|') {
			return false
		}
	}
	return true
}

// topicTable is the topic configs: changed through metadata records in
// the commitlog (mlog), read from the store and kept in memory.
type topicTable struct {
	meta *metaStore
	mlog *metaLog

	mu      sync.RWMutex
	topics  map[string]TopicConfig
	version remoting.DataVersion
	changed func() // called after a change (outside mu): re-register with the name servers
}

func loadTopics(meta *metaStore, now int64) (*topicTable, error) {
	t := &topicTable{meta: meta, topics: make(map[string]TopicConfig), version: remoting.DataVersion{Timestamp: now}}
	err := meta.scan(prefixTopic, func(k, v []byte) error {
		var c TopicConfig
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("broker: topic %q config: %w", k[len(prefixTopic):], err)
		}
		t.topics[c.TopicName] = c
		return nil
	})
	return t, err
}

func (t *topicTable) get(name string) (TopicConfig, bool) {
	t.mu.RLock()
	c, ok := t.topics[name]
	t.mu.RUnlock()
	return c, ok
}

// put creates or replaces a topic.
func (t *topicTable) put(c TopicConfig) error {
	if c.TopicFilterType == "" {
		c.TopicFilterType = remoting.TopicFilterSingleTag
	}
	if c.ReadQueueNums < 1 || c.WriteQueueNums < 1 || c.ReadQueueNums > 1024 || c.WriteQueueNums > 1024 {
		return fmt.Errorf("%w: queue counts must be 1 to 1024 (read %d, write %d)", ErrInvalidRequest, c.ReadQueueNums, c.WriteQueueNums)
	}
	if c.Perm&^(protocol.PermRead|protocol.PermWrite|protocol.PermInherit|protocol.PermPriority) != 0 {
		return fmt.Errorf("%w: perm %d has unknown bits", ErrInvalidRequest, c.Perm)
	}
	t.mu.RLock()
	old, existed := t.topics[c.TopicName]
	t.mu.RUnlock()
	if existed && old == c {
		return nil
	}
	if err := t.mlog.write([]metaChange{{Kind: metaTopicPut, Topic: c}}, true); err != nil {
		return fmt.Errorf("broker: store topic %q: %w", c.TopicName, err)
	}
	if t.changed != nil {
		t.changed()
	}
	return nil
}

// applyPut and applyDelete are the applier's (metalog.go): the change is
// in the log and the store.
func (t *topicTable) applyPut(c TopicConfig) {
	t.mu.Lock()
	t.topics[c.TopicName] = c
	t.version.Counter++
	t.mu.Unlock()
}

func (t *topicTable) applyDelete(name string) {
	t.mu.Lock()
	if _, ok := t.topics[name]; ok {
		delete(t.topics, name)
		t.version.Counter++
	}
	t.mu.Unlock()
}

// reload replaces the table with what the store holds.
func (t *topicTable) reload() error {
	n, err := loadTopics(t.meta, 0)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.topics = n.topics
	t.version.Counter++
	t.mu.Unlock()
	return nil
}

// ensure creates the topic with c if it does not exist and returns the
// config in force.
func (t *topicTable) ensure(c TopicConfig) (TopicConfig, error) {
	if cur, ok := t.get(c.TopicName); ok {
		return cur, nil
	}
	if err := t.put(c); err != nil {
		return TopicConfig{}, err
	}
	cur, _ := t.get(c.TopicName)
	return cur, nil
}

func (t *topicTable) delete(name string) error {
	if _, ok := t.get(name); !ok {
		return fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	if err := t.mlog.write([]metaChange{{Kind: metaTopicDelete, Name: name}}, true); err != nil {
		return fmt.Errorf("broker: delete topic %q: %w", name, err)
	}
	if t.changed != nil {
		t.changed()
	}
	return nil
}

// snapshot returns every topic config and the table's version.
func (t *topicTable) snapshot() (map[string]TopicConfig, remoting.DataVersion) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := make(map[string]TopicConfig, len(t.topics))
	for k, v := range t.topics {
		m[k] = v
	}
	return m, t.version
}

func (t *topicTable) names() []string {
	t.mu.RLock()
	out := make([]string, 0, len(t.topics))
	for k := range t.topics {
		out = append(out, k)
	}
	t.mu.RUnlock()
	sort.Strings(out)
	return out
}

func (t *topicTable) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.topics)
}

// isRetryOrDLQ reports the group topics the broker manages itself.
func isRetryOrDLQ(topic string) bool {
	return protocol.IsRetryTopic(topic) || protocol.IsDLQTopic(topic)
}
