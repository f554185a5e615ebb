package compat

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestDedupWindowWithOfficialClient: on a topic with a dedup window, a
// message the official client sends again (same UNIQ_KEY, as its retries
// do) is stored once and answered with the original offsets, also after
// the broker was killed with kill -9 and restarted.
func TestDedupWindowWithOfficialClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, queues, n = "Dedup", 4, 10
	hc := &http.Client{Timeout: 10 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	resp, err := hc.Post(base+"/v1/topics", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":%q,"read_queues":%d,"write_queues":%d,"dedup_window":"10m"}`, topic, queues, queues)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create topic: status %d", resp.StatusCode)
	}
	waitRoute(t, s.NameSrv, topic, 1)
	p := newProducer(t, s.NameSrv)

	msgs := make([]*primitive.Message, n)
	first := make([]*primitive.SendResult, n)
	for i := range msgs {
		msgs[i] = primitive.NewMessage(topic, []byte(fmt.Sprintf("d-%d", i)))
		first[i] = sendSync(t, p, msgs[i])
	}
	check := func(when string) {
		t.Helper()
		for i, m := range msgs {
			again := sendSync(t, p, m) // the client keeps the UNIQ_KEY it set
			if again.MsgID != first[i].MsgID || again.OffsetMsgID != first[i].OffsetMsgID || again.QueueOffset != first[i].QueueOffset {
				t.Errorf("%s: %s answered %s/%s@%d, first %s/%s@%d", when, m.Body, again.MsgID, again.OffsetMsgID, again.QueueOffset,
					first[i].MsgID, first[i].OffsetMsgID, first[i].QueueOffset)
			}
		}
	}
	check("sent again")
	s.kill9AndRestart(t)
	base = fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	check("after kill -9")

	var count map[string]int
	read := func() bool {
		var err error
		count, err = tryReadTopic(s.httpPort, queues, topic)
		return err == nil && len(count) >= n
	}
	waitFor(t, receiveTimeout, read, "the %d messages readable", n)
	for i := range n {
		if b := fmt.Sprintf("d-%d", i); count[b] != 1 {
			t.Errorf("%s stored %d times", b, count[b])
		}
	}
	if len(count) != n {
		t.Errorf("stored %v", count)
	}
}
