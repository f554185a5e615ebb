package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/client/admin"
	ipoll "github.com/ferrymq/ferry/internal/poll"
)

// TestOpsTxAndProducers shows an open HTTP transaction and an idempotent
// producer, through the name server and through the HTTP API.
func TestOpsTxAndProducers(t *testing.T) {
	startServer(t)
	ns := []string{"--namesrv", srv.namesrv}
	hs := []string{"--namesrv", "http://" + srv.http}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	a, err := admin.New(srv.namesrv)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.CreateTopic(ctx, admin.TopicSpec{Topic: "txops", ReadQueues: 1, WriteQueues: 1}); err != nil {
		t.Fatal(err)
	}
	if ipoll.Until(ctx, 20*time.Second, 20*time.Millisecond, func() bool {
		_, err := a.Route(ctx, "txops")
		return err == nil
	}) != nil {
		t.Fatal("no route for txops")
	}

	// An idempotent producer that stored two batches on queue 0.
	p, err := client.NewProducer(srv.namesrv, client.WithIdempotence("ops-producer-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 2; i++ {
		if _, err := p.Send(ctx, &client.Message{Topic: "txops", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}

	// An HTTP transaction holding two messages.
	post := func(path string, body any, out any) {
		t.Helper()
		j, _ := json.Marshal(body)
		resp, err := http.Post("http://"+srv.http+path, "application/json", bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	var tx struct {
		ID string `json:"id"`
	}
	post("/v1/topics/txops/transactions", map[string]string{"timeout": "1h"}, &tx)
	post("/v1/topics/txops/transactions/"+tx.ID+"/messages", map[string]any{"messages": []map[string]any{{"body": "a"}, {"body": "b"}}}, nil)

	// The broker lists a half once it has indexed it.
	if ipoll.Until(ctx, 20*time.Second, 20*time.Millisecond, func() bool {
		txs, err := a.Transaction(ctx, tx.ID)
		return err == nil && len(txs) == 2
	}) != nil {
		t.Fatal("the transaction is not listed")
	}

	for _, env := range [][]string{ns, hs} {
		suffix := ""
		if env[1] != srv.namesrv {
			suffix = ".http"
		}
		for _, s := range []step{
			{name: "producer_list" + suffix, args: []string{"producer", "list"}},
			{name: "producer_list_json" + suffix, args: []string{"producer", "list", "-o", "json"}},
			{name: "tx_show" + suffix, args: []string{"tx", "show", tx.ID}},
			{name: "tx_show_json" + suffix, args: []string{"tx", "show", tx.ID, "-o", "json"}},
			{name: "err_tx_show_unknown" + suffix, args: []string{"tx", "show", "NOSUCH"}, code: 1, errHas: "no open transaction NOSUCH"},
			{args: []string{"tx", "show"}, code: 2},
		} {
			s.check(t, env...)
		}
	}
	post("/v1/topics/txops/transactions/"+tx.ID+"/abort", nil, nil)
}
