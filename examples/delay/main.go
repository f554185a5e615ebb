// Command delay sends a message with a delay level and one with a delivery
// time, and waits for both with a push consumer.
//
//	go run ./examples/delay -namesrv 127.0.0.1:9876 -topic demo-delay
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
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name servers, ip:port[;ip:port]")
	topic := flag.String("topic", "demo-delay", "topic (must exist for the consumer)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	got := make(chan *client.MessageExt, 2)
	c, err := client.NewPushConsumer(*namesrv, func(_ context.Context, msgs []*client.MessageExt) error {
		for _, m := range msgs {
			got <- m
		}
		return nil
	}, client.WithGroup("example-delay"))
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

	p, err := client.NewProducer(*namesrv)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	// Level 2 is 5 s on a broker with the default delay levels.
	if _, err := p.Send(ctx, &client.Message{Topic: *topic, Body: []byte("level 2"), DelayLevel: 2}); err != nil {
		log.Fatal(err)
	}
	if _, err := p.Send(ctx, &client.Message{Topic: *topic, Body: []byte("in 3s"), DeliverAt: time.Now().Add(3 * time.Second)}); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case m := <-got:
			fmt.Printf("%q arrived after %v\n", m.Body, time.Since(start).Round(100*time.Millisecond))
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
}
