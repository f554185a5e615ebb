// Command pull-consumer reads a topic's queues by offset and commits its
// position for the group.
//
//	go run ./examples/pull-consumer -namesrv 127.0.0.1:9876 -topic demo -group demo-pull
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
	topic := flag.String("topic", "demo", "topic")
	group := flag.String("group", "demo-pull", "group whose offsets are committed")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := client.NewPullConsumer(*namesrv, client.WithGroup(*group), client.WithConsumeFromWhere(client.ConsumeFromFirstOffset))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	qs, err := c.Queues(ctx, *topic)
	if err != nil {
		log.Fatal(err)
	}
	c.Assign(qs)
	for {
		msgs, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if len(msgs) == 0 {
			break // caught up on every queue
		}
		for _, m := range msgs {
			fmt.Printf("%s off=%d: %s\n", m.Queue, m.QueueOffset, m.Body)
		}
	}
	if err := c.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	for _, q := range qs {
		off, _ := c.Position(q)
		fmt.Printf("committed %s at %d\n", q, off)
	}
}
