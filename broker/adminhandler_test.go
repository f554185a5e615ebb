package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// fakeLookup finds the messages it is given.
type fakeLookup struct {
	keys map[string][][]byte
	ids  map[string][]byte
}

func (f fakeLookup) byKey(topic, key string, _, _ int64, _ int) ([][]byte, error) {
	return f.keys[topic+"/"+key], nil
}

func (f fakeLookup) byID(id string) ([]byte, error) {
	if raw, ok := f.ids[id]; ok {
		return raw, nil
	}
	return nil, errors.New("no message " + id)
}

// serveAdmin serves adminHandler over a and msgs alone on a port of its
// own, and returns a client of it.
func serveAdmin(t *testing.T, a *Admin, msgs messageLookup) *tclient {
	t.Helper()
	mux := remoting.NewMux()
	adminHandler{a: a, msgs: msgs}.routes(mux.HandleFunc)
	srv := remoting.NewServer(mux, remoting.ServerConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()); <-done })
	cl := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { cl.Close() })
	return &tclient{t: t, c: cl, addr: ln.Addr().String()}
}

// TestAdminHandlerCodes: the handler answers the administration codes
// from its Admin and its message lookup, with the codes of the errors'
// classes.
func TestAdminHandlerCodes(t *testing.T) {
	a := testBroker(t, t.TempDir(), nil).Admin()
	c := serveAdmin(t, a, fakeLookup{
		keys: map[string][][]byte{"shop/k1": {[]byte("one"), []byte("two")}},
		ids:  map[string][]byte{"ID1": []byte("raw")},
	})
	req := func(code int16, fields map[string]string, body []byte) *remoting.Command {
		return c.invoke(remoting.NewRequest(code, fields, body))
	}

	mustOK(t, req(protocol.ReqUpdateAndCreateTopic, map[string]string{"topic": "shop", "readQueueNums": "2", "writeQueueNums": "2", "dedupWindow": "1000"}, nil))
	if tc, ok := a.Topic("shop"); !ok || tc.ReadQueueNums != 2 || tc.DedupWindowMs != 1000 {
		t.Fatalf("created over remoting: %+v %v", tc, ok)
	}
	if r := req(protocol.ReqUpdateAndCreateTopic, map[string]string{"topic": "shop", "dedupWindow": "soon"}, nil); r.Code != protocol.RespSystemError {
		t.Fatalf("a dedup window not a number: code %d %q", r.Code, r.Remark)
	}
	if r := req(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": protocol.ScheduleTopic}, nil); r.Code != protocol.RespNoPermission {
		t.Fatalf("delete a system topic: code %d %q", r.Code, r.Remark)
	}
	if r := req(protocol.ReqGetTopicStatsInfo, map[string]string{"topic": "nowhere"}, nil); r.Code != protocol.RespTopicNotExist {
		t.Fatalf("stats of a missing topic: code %d %q", r.Code, r.Remark)
	}

	r := req(protocol.ReqQueryMessage, map[string]string{"topic": "shop", "key": "k1"}, nil)
	mustOK(t, r)
	if string(r.Body) != "onetwo" {
		t.Fatalf("query by key: %q", r.Body)
	}
	if r := req(protocol.ReqQueryMessage, map[string]string{"topic": "shop", "key": "k2"}, nil); r.Code != protocol.RespQueryNotFound {
		t.Fatalf("query by a key without messages: code %d", r.Code)
	}
	r = req(protocol.ReqViewMessageByID, map[string]string{"msgId": "ID1"}, nil)
	mustOK(t, r)
	if string(r.Body) != "raw" {
		t.Fatalf("view by id: %q", r.Body)
	}
	if r := req(protocol.ReqViewMessageByID, map[string]string{"msgId": "ID2"}, nil); r.Code != protocol.RespSystemError || r.Remark != "no message ID2" {
		t.Fatalf("view a missing id: code %d %q", r.Code, r.Remark)
	}

	mustOK(t, req(protocol.ReqUpdateBrokerConfig, nil, []byte(`{"retry_max_times":"4"}`)))
	r = req(protocol.ReqGetBrokerConfig, nil, nil)
	var cfg map[string]string
	mustOK(t, r)
	if err := json.Unmarshal(r.Body, &cfg); err != nil || cfg["retry_max_times"] != "4" {
		t.Fatalf("config after a change: %s", r.Body)
	}
	mustOK(t, req(protocol.ReqFerryDrain, nil, nil))
	if a.Runtime().Writable {
		t.Fatal("drained over remoting: still writable")
	}
	mustOK(t, req(protocol.ReqFerryUndrain, nil, nil))
	if !a.Runtime().Writable {
		t.Fatal("undrained over remoting: not writable")
	}
}
