// Command orderly sends messages of several orders with a sharding key
// (each order's messages land in one queue) and consumes them in order.
//
//	go run ./examples/orderly -namesrv 127.0.0.1:9876 -topic demo-orderly
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/ferrymq/ferry/client"
)

func main() {
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name servers, ip:port[;ip:port]")
	topic := flag.String("topic", "demo-orderly", "topic (must exist)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const orders, steps = 3, 5
	var wg sync.WaitGroup
	wg.Add(orders * steps)
	c, err := client.NewPushConsumer(*namesrv, func(_ context.Context, msgs []*client.MessageExt) error {
		for _, m := range msgs {
			fmt.Printf("queue %d: %s\n", m.Queue.QueueID, m.Body)
			wg.Done()
		}
		return nil
	}, client.WithGroup("example-orderly"), client.WithOrderly(true), client.WithConsumeFromWhere(client.ConsumeFromLastOffset))
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

	p, err := client.NewProducer(*namesrv, client.WithQueueSelector(client.HashSelector()))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for s := 0; s < steps; s++ {
		for o := 0; o < orders; o++ {
			key := fmt.Sprintf("order-%d", o)
			if _, err := p.Send(ctx, &client.Message{Topic: *topic, ShardingKey: key, Body: []byte(fmt.Sprintf("%s step %d", key, s))}); err != nil {
				log.Fatal(err)
			}
		}
	}
	wg.Wait()
}
