// Command outboxproducer is an application as the dedup-window tests see
// one: it sends messages body-0 … body-(n-1) with the official RocketMQ
// Go client and keeps an outbox file. Before each send it appends
// "send <i> <UNIQ_KEY>" (the key made as the client makes it), after the
// answer "ack <i>"; it prints "ack <i>" on stdout too. Started again on
// the same outbox (after being killed anywhere), it first sends again,
// with the same UNIQ_KEY, every message it sent but had no answer for,
// then goes on. It prints "done" and exits once all n are acknowledged.
//
// Usage: outboxproducer -namesrv ADDR -topic T -group G -outbox FILE -n N
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

func main() {
	namesrv := flag.String("namesrv", "", "name server ip:port")
	topic := flag.String("topic", "", "topic")
	group := flag.String("group", "", "producer group")
	outbox := flag.String("outbox", "", "outbox file")
	n := flag.Int("n", 0, "messages to send")
	flag.Parse()
	if err := run(*namesrv, *topic, *group, *outbox, *n); err != nil {
		fmt.Fprintln(os.Stderr, "outboxproducer:", err)
		os.Exit(1)
	}
}

// pending is a message sent without an answer: its index and key.
type pending struct {
	i   int
	key string
}

// readOutbox returns the messages sent without an answer, in send order,
// and the next index never sent.
func readOutbox(path string) ([]pending, int, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sent := map[int]string{}
	var order []int
	next := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue // a line cut short by the kill
		}
		i, err := strconv.Atoi(fs[1])
		if err != nil {
			continue
		}
		switch {
		case fs[0] == "send" && len(fs) == 3:
			if _, ok := sent[i]; !ok {
				order = append(order, i)
			}
			sent[i] = fs[2]
			next = max(next, i+1)
		case fs[0] == "ack":
			delete(sent, i)
		}
	}
	var out []pending
	for _, i := range order {
		if k, ok := sent[i]; ok {
			out = append(out, pending{i, k})
			delete(sent, i)
		}
	}
	return out, next, sc.Err()
}

func run(namesrv, topic, group, outbox string, n int) error {
	rlog.SetLogLevel("error")
	unacked, next, err := readOutbox(outbox)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(outbox, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{namesrv}), producer.WithGroupName(group),
		producer.WithInstanceName(fmt.Sprintf("outbox-%d", os.Getpid())), producer.WithRetry(2),
		producer.WithSendMsgTimeout(2*time.Second))
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer p.Shutdown()
	acks := bufio.NewWriter(os.Stdout)
	send := func(m pending) error {
		msg := primitive.NewMessage(topic, []byte("body-"+strconv.Itoa(m.i)))
		msg.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, m.key)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := p.SendSync(ctx, msg)
			cancel()
			if err == nil && r.Status == primitive.SendOK {
				break
			}
		}
		if _, err := fmt.Fprintf(f, "ack %d\n", m.i); err != nil {
			return err
		}
		fmt.Fprintf(acks, "ack %d\n", m.i)
		return acks.Flush()
	}
	for _, m := range unacked {
		if err := send(m); err != nil {
			return err
		}
	}
	for i := next; i < n; i++ {
		m := pending{i, primitive.CreateUniqID()}
		if _, err := fmt.Fprintf(f, "send %d %s\n", i, m.key); err != nil {
			return err
		}
		if err := send(m); err != nil {
			return err
		}
	}
	fmt.Fprintln(acks, "done")
	return acks.Flush()
}
