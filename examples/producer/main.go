// Command producer sends a few messages synchronously, with tags, keys and
// properties.
//
//	go run ./examples/producer -namesrv 127.0.0.1:9876 -topic demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ferrymq/ferry/client"
)

func main() {
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name servers, ip:port[;ip:port]")
	topic := flag.String("topic", "demo", "topic")
	n := flag.Int("n", 10, "messages to send")
	flag.Parse()

	p, err := client.NewProducer(*namesrv, client.WithGroup("example-producer"),
		client.WithLogger(client.NewBasicLogger(os.Stderr, client.LogWarn)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < *n; i++ {
		r, err := p.Send(ctx, &client.Message{
			Topic:      *topic,
			Body:       []byte(fmt.Sprintf("hello %d", i)),
			Tags:       "TagA",
			Keys:       []string{fmt.Sprintf("order-%d", i)},
			Properties: map[string]string{"source": "example"},
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("sent %s to %s at offset %d\n", r.MsgID, r.Queue, r.QueueOffset)
	}
}
