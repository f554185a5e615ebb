// Command async sends with a callback, with a future, and one way.
//
//	go run ./examples/async -namesrv 127.0.0.1:9876 -topic demo
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

	p, err := client.NewProducer(*namesrv)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		p.SendAsync(ctx, &client.Message{Topic: *topic, Body: []byte(fmt.Sprintf("async %d", i))}, func(r client.SendResult, err error) {
			defer wg.Done()
			if err != nil {
				log.Print(err)
				return
			}
			fmt.Printf("callback: %s at %s offset %d\n", r.MsgID, r.Queue, r.QueueOffset)
		})
	}
	wg.Wait()

	f := p.SendFuture(ctx, &client.Message{Topic: *topic, Body: []byte("future")})
	r, err := f.Get(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("future: %s\n", r.MsgID)

	if err := p.SendOneway(ctx, &client.Message{Topic: *topic, Body: []byte("fire and forget")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("oneway: written")
}
