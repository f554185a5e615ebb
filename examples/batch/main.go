// Command batch sends messages two ways: one explicit batch (one request),
// and many concurrent Sends that automatic batching (WithLinger) packs into
// few requests.
//
//	go run ./examples/batch -namesrv 127.0.0.1:9876 -topic demo
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
	topic := flag.String("topic", "demo", "topic")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := client.NewProducer(*namesrv, client.WithLinger(5*time.Millisecond), client.WithBatchSize(128),
		client.WithMaxBufferedBytes(8<<20))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var batch []*client.Message
	for i := 0; i < 10; i++ {
		batch = append(batch, &client.Message{Topic: *topic, Body: []byte(fmt.Sprintf("batch %d", i))})
	}
	rs, err := p.SendBatch(ctx, batch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("explicit batch: %d messages in %s from offset %d\n", len(rs), rs[0].Queue, rs[0].QueueOffset)

	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := p.Send(ctx, &client.Message{Topic: *topic, Body: []byte(fmt.Sprintf("auto %d", i))}); err != nil {
				log.Print(err)
			}
		}(i)
	}
	wg.Wait()
	s := p.Stats()
	fmt.Printf("automatic batching: %d messages in %d requests\n", s.Messages, s.Requests)
}
