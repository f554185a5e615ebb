// Command http-transport produces and consumes through one broker's HTTP
// API instead of the remoting protocol: only the endpoint changes.
//
//	go run ./examples/http-transport -endpoint http://127.0.0.1:8080 -topic demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/ferrymq/ferry/client"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:8080", "a broker's HTTP API")
	topic := flag.String("topic", "demo", "topic (must exist)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := client.NewProducer(*endpoint)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	got := make(chan *client.MessageExt, 16)
	c, err := client.NewPushConsumer(*endpoint, func(_ context.Context, msgs []*client.MessageExt) error {
		for _, m := range msgs {
			got <- m
		}
		return nil // acked; an error nacks (redelivered with reconsume_times+1)
	}, client.WithGroup("example-http"), client.WithLongPollTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Subscribe(*topic, "*"); err != nil {
		log.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	r, err := p.Send(ctx, &client.Message{Topic: *topic, Body: []byte("over HTTP"), Tags: "web"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %s to queue %d offset %d\n", r.MsgID, r.Queue.QueueID, r.QueueOffset)
	for {
		select {
		case m := <-got:
			fmt.Printf("received %s: %s\n", m.MsgID, m.Body)
			if m.MsgID == r.MsgID {
				return
			}
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
}
