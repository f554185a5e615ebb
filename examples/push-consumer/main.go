// Command push-consumer consumes a topic in a clustering group until
// interrupted; run it twice to see the queues split between members.
//
//	go run ./examples/push-consumer -namesrv 127.0.0.1:9876 -topic demo -group demo-group
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrymq/ferry/client"
)

func main() {
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name servers, ip:port[;ip:port]")
	topic := flag.String("topic", "demo", "topic")
	group := flag.String("group", "demo-group", "consumer group")
	tags := flag.String("tags", "*", `tag expression ("*", "TagA || TagB")`)
	broadcast := flag.Bool("broadcast", false, "every member gets every message")
	flag.Parse()

	c, err := client.NewPushConsumer(*namesrv, func(_ context.Context, msgs []*client.MessageExt) error {
		for _, m := range msgs {
			fmt.Printf("%s q=%d off=%d reconsume=%d: %s\n", m.Topic, m.Queue.QueueID, m.QueueOffset, m.ReconsumeTimes, m.Body)
		}
		return nil // an error would redeliver them through the retry topic
	}, client.WithGroup(*group), client.WithBroadcast(*broadcast), client.WithConsumeFromWhere(client.ConsumeFromFirstOffset),
		client.WithMaxCachedMessagesPerQueue(256), client.WithConsumeGoroutines(8),
		client.WithLogger(client.NewBasicLogger(os.Stderr, client.LogInfo)))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Subscribe(*topic, *tags); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
}
