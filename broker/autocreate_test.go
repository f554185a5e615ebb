package broker

import (
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// A replica that was just elected takes writes before it has stored the
// auto-create template; a topic auto-created in that window gets the
// configured default queue count, not zero queues.
func TestAutoCreateWithoutTemplate(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.DefaultTopicQueueNums = 6 })
	b.topics.applyDelete(protocol.AutoCreateTopicTemplate)
	for _, h := range []*sendHeader{
		{topic: "NoTemplateYet", queueID: -1},
		{topic: "NoTemplateYetDefault", defaultTopic: protocol.AutoCreateTopicTemplate, defaultQueueNums: 4, queueID: -1},
	} {
		tc, err := b.sender.resolveSendTopic(h)
		if err != nil {
			t.Fatalf("%s: %v", h.topic, err)
		}
		want := int32(6)
		if h.defaultQueueNums > 0 {
			want = h.defaultQueueNums
		}
		if tc.WriteQueueNums != want || tc.ReadQueueNums != want {
			t.Fatalf("%s: queues read %d write %d, want %d", h.topic, tc.ReadQueueNums, tc.WriteQueueNums, want)
		}
	}
}
