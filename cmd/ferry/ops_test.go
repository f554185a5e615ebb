package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client/admin"
	ipoll "github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

func TestOps(t *testing.T) {
	startServer(t)
	if srv.http == "" {
		t.Fatal("the server did not say its HTTP address")
	}
	ns := []string{"--namesrv", srv.namesrv}
	hs := []string{"--namesrv", "http://" + srv.http}
	a, err := admin.New(srv.namesrv)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	do := func(steps ...step) {
		t.Helper()
		for _, s := range steps {
			s.check(t, ns...)
			if s.http != httpOnce {
				s.overHTTP().check(t, hs...)
			}
		}
	}
	doHTTP := func(steps ...step) {
		t.Helper()
		for _, s := range steps {
			s.check(t, hs...)
		}
	}
	waitRoute := func(topic string) {
		t.Helper()
		if ipoll.Until(ctx, 20*time.Second, 20*time.Millisecond, func() bool {
			_, err := a.Route(ctx, topic)
			return err == nil
		}) != nil {
			t.Fatalf("no route for %s", topic)
		}
	}

	// waitMessages waits until the topic's queues hold n messages (the
	// consume queues are written after the send returns).
	waitMessages := func(topic string, n int64) {
		t.Helper()
		var d any
		var err error
		if ipoll.Until(ctx, 20*time.Second, 20*time.Millisecond, func() bool {
			desc, derr := a.DescribeTopic(ctx, topic)
			d, err = desc, derr
			return err == nil && desc.Messages >= n
		}) != nil {
			t.Fatalf("%s: want %d messages in its queues: %+v %v", topic, n, d, err)
		}
	}

	do(
		step{name: "cluster_list", args: []string{"cluster", "list", "--interval", "0"}},
		step{name: "cluster_list_json", args: []string{"cluster", "list", "--interval", "0", "-o", "json"}},
		step{http: httpOnce, name: "topic_create", args: []string{"topic", "create", "orders", "--queues", "2"}},
		step{http: httpOwn, name: "topic_create_exists", args: []string{"topic", "create", "orders"}, code: 1, errHas: "already exists"},
		step{http: httpOnce, name: "topic_create_json", args: []string{"topic", "create", "audit", "--read-queues", "1", "--write-queues", "1", "--perm", "RW", "-o", "json"}},
		step{http: httpOnce, name: "topic_update", args: []string{"topic", "update", "audit", "--perm", "R"}},
		step{name: "topic_list", args: []string{"topic", "list"}},
		step{name: "topic_list_noheaders", args: []string{"topic", "list", "--no-headers"}},
		step{name: "topic_list_json", args: []string{"topic", "list", "-o", "json"}},
	)
	waitRoute("orders")
	// Routes come from the name servers only.
	doHTTP(step{name: "topic_route.http", args: []string{"topic", "route", "orders"}, code: 1, errHas: "name-server endpoint"})
	do(
		step{http: httpOnce, name: "topic_route", args: []string{"topic", "route", "orders"}},
		step{http: httpOnce, name: "msg_send", args: []string{"msg", "send", "--topic", "orders", "--tags", "TagA", "--keys", "order-1"}, stdin: "one\ntwo\nthree\nfour\n"},
	)
	waitMessages("orders", 4)
	do(
		step{name: "topic_describe", args: []string{"topic", "describe", "orders"}},
		step{name: "topic_describe_json", args: []string{"topic", "describe", "orders", "-o", "json"}},
		step{http: httpOnce, name: "msg_consume", args: []string{"msg", "consume", "--topic", "orders", "--group", "g1", "--from-beginning", "--max", "3"}},
		step{http: httpOnce, name: "msg_consume_json", args: []string{"msg", "consume", "--topic", "orders", "--group", "g2", "--from-beginning", "-o", "json"}},
		step{name: "msg_query", args: []string{"msg", "query", "--topic", "orders", "--key", "order-1"}},
		step{name: "msg_query_none", args: []string{"msg", "query", "--topic", "orders", "--key", "nope", "-o", "json"}},
		step{http: httpOnce, name: "group_create", args: []string{"group", "create", "g3", "--retry-max", "2", "--broadcast=false"}},
		step{http: httpOnce, name: "group_update", args: []string{"group", "update", "g3", "--consume-enable=false"}},
		step{name: "group_list", args: []string{"group", "list"}},
		step{http: httpOwn, name: "group_list_json", args: []string{"group", "list", "-o", "json"}},
		step{name: "tx_list", args: []string{"tx", "list"}},
		step{name: "tx_list_json", args: []string{"tx", "list", "-o", "json"}},
		step{http: httpOwn, name: "group_lag", args: []string{"group", "lag", "g1"}},
		step{http: httpOwn, name: "group_lag_json", args: []string{"group", "lag", "g1", "-o", "json"}},
		step{http: httpOwn, name: "group_lag_all", args: []string{"group", "lag", "--all"}},
		step{name: "offset_reset_dry", args: []string{"offset", "reset", "g1", "--topic", "orders", "--to-earliest"}},
		step{http: httpOnce, name: "offset_reset_execute", args: []string{"offset", "reset", "g1", "--topic", "orders", "--to-offset", "1", "--execute", "--yes", "-o", "json"}},
		step{http: httpOnce, name: "offset_reset_latest", args: []string{"offset", "reset", "g1", "--topic", "orders", "--to-latest", "--execute", "--yes"}},
		step{name: "offset_reset_time", args: []string{"offset", "reset", "g1", "--topic", "orders", "--to-time", "2000-01-01T00:00:00Z"}},
		step{http: httpOwn, name: "group_lag_after_reset", args: []string{"group", "lag", "g1"}},
	)

	// msg get and resend by the id the send printed.
	out, _, code := ferry(t, "", append([]string{"msg", "query", "--topic", "orders", "--key", "order-1", "-o", "json"}, ns...)...)
	var q struct {
		Messages []admin.MessageView `json:"messages"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &q) != nil || len(q.Messages) != 4 {
		t.Fatalf("query: exit %d, %s", code, out)
	}
	id := q.Messages[0].MsgID
	do(
		step{http: httpOwn, name: "msg_get", args: []string{"msg", "get", id}},
		step{http: httpOwn, name: "msg_get_json", args: []string{"msg", "get", id, "-o", "json"}},
		step{http: httpOwn, name: "msg_get_offset_id", args: []string{"msg", "get", q.Messages[1].OffsetMsgID, "-o", "json"}},
		step{http: httpOnce, args: []string{"msg", "resend", id, "--topic", "audit"}, code: 1, errHas: "audit"},
		step{http: httpOnce, name: "msg_resend_ok", args: []string{"msg", "resend", id}},
	)

	rc := remoting.NewClient(remoting.ClientConfig{})
	defer rc.Close()

	// An online consumer: clients, lag's CLIENT column, and a refused reset.
	hb, _ := json.Marshal(remoting.HeartbeatData{ClientID: "client-1@" + strconv.Itoa(os.Getpid()), ConsumerDataSet: []remoting.ConsumerData{{
		GroupName: "g1", ConsumeType: remoting.ConsumePassively, MessageModel: remoting.MessageModelClustering,
		ConsumeFromWhere:    remoting.ConsumeFromLastOffset,
		SubscriptionDataSet: []remoting.SubscriptionData{{Topic: "orders", SubString: "*", ExpressionType: remoting.ExpressionTypeTag}},
	}}})
	if resp, err := rc.Invoke(ctx, srv.broker, remoting.NewRequest(protocol.ReqHeartBeat, nil, hb)); err != nil || resp.Code != 0 {
		t.Fatalf("heartbeat: %v %+v", err, resp)
	}
	do(
		step{http: httpOwn, name: "group_clients", args: []string{"group", "clients", "g1"}},
		step{http: httpOwn, name: "group_clients_json", args: []string{"group", "clients", "g1", "-o", "json"}},
		step{http: httpOwn, name: "group_describe", args: []string{"group", "describe", "g1"}},
		step{http: httpOwn, name: "group_lag_client", args: []string{"group", "lag", "g1"}},
		step{http: httpOwn, name: "offset_reset_online", args: []string{"offset", "reset", "g1", "--topic", "orders", "--to-earliest", "--execute", "--yes"}, code: 1, errHas: "online consumers"},
	)

	// Dead letters: a consumer of g1 gives up on two messages.
	for _, m := range q.Messages[:2] {
		resp, err := rc.Invoke(ctx, srv.broker, remoting.NewRequest(protocol.ReqConsumerSendMsgBack, map[string]string{
			"group": "g1", "offset": strconv.FormatInt(m.CommitlogOffset, 10), "delayLevel": "-1",
			"originMsgId": m.MsgID, "originTopic": "orders", "maxReconsumeTimes": "16",
		}, nil))
		if err != nil || resp.Code != protocol.RespSuccess {
			t.Fatalf("send back: %v %+v", err, resp)
		}
	}
	{
		var dls any
		var err error
		if ipoll.Until(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
			got, derr := a.DeadLetters(ctx, "g1", 0)
			dls, err = got, derr
			return err == nil && len(got) == 2
		}) != nil {
			t.Fatalf("dead letters: %v %v", dls, err)
		}
	}
	do(
		step{name: "dlq_list", args: []string{"dlq", "list", "g1"}},
		step{name: "dlq_list_json", args: []string{"dlq", "list", "g1", "--all", "-o", "json"}},
		step{http: httpOwn, name: "dlq_show", args: []string{"dlq", "show", "g1", "--ids", q.Messages[0].MsgID}},
		step{http: httpOwn, name: "group_lag_retry", args: []string{"group", "lag", "g1", "--include-retry"}},
		step{http: httpOnce, name: "dlq_resend_ids", args: []string{"dlq", "resend", "g1", "--ids", q.Messages[0].MsgID, "--yes"}},
		step{http: httpOnce, name: "dlq_resend_all", args: []string{"dlq", "resend", "g1", "--all", "--yes", "--to-retry", "-o", "json"}},
		step{http: httpOnce, name: "dlq_resend_again", args: []string{"dlq", "resend", "g1", "--all", "--yes"}},
		step{http: httpOnce, name: "dlq_list_after_resend", args: []string{"dlq", "list", "g1"}},
		step{http: httpOwn, name: "dlq_resend_unknown", args: []string{"dlq", "resend", "g1", "--ids", "NOPE", "--yes"}, code: 1, errHas: "NOPE"},
	)

	do(
		step{name: "broker_status", args: []string{"broker", "status"}},
		step{name: "broker_config_get", args: []string{"broker", "config", "get", "retry_max_times", "flush"}},
		step{http: httpOnce, name: "broker_config_set", args: []string{"broker", "config", "set", "retry_max_times=5"}},
		step{http: httpOwn, name: "broker_config_set_static", args: []string{"broker", "config", "set", "flush=sync"}, code: 1, errHas: "cannot change at run time"},
		step{http: httpOwn, name: "broker_config_set_invalid", args: []string{"broker", "config", "set", "disk_max_used_ratio=2"}, code: 1, errHas: "must be between 0 and 1"},
		step{name: "broker_config_get_json", args: []string{"broker", "config", "get", "retry_max_times", "-o", "json"}},
		step{http: httpOnce, name: "broker_drain", args: []string{"broker", "drain", "--yes"}},
		step{name: "broker_drained_status", args: []string{"cluster", "list", "--interval", "0"}},
		step{http: httpOnce, name: "broker_undrain", args: []string{"broker", "undrain"}},
		step{http: httpOnce, name: "group_delete", args: []string{"group", "delete", "g3", "--yes"}},
		step{http: httpOnce, name: "topic_delete", args: []string{"topic", "delete", "audit", "--yes"}},
		step{http: httpOwn, name: "topic_describe_deleted", args: []string{"topic", "describe", "audit"}, code: 1, errHas: "no such topic"},
	)

	// The commands that change state, over HTTP, on their own topics and
	// groups.
	doHTTP(
		step{name: "http_topic_create", args: []string{"topic", "create", "h-orders", "--queues", "2"}},
		step{name: "http_topic_create_exists", args: []string{"topic", "create", "h-orders"}, code: 1, errHas: "already exists"},
		step{name: "http_topic_create_json", args: []string{"topic", "create", "h-audit", "--read-queues", "1", "--write-queues", "1", "--perm", "RW", "-o", "json"}},
		step{name: "http_topic_create_broker", args: []string{"topic", "create", "h-x", "--broker", "nosuch"}, code: 1, errHas: "no such broker"},
		step{name: "http_topic_update", args: []string{"topic", "update", "h-audit", "--perm", "R"}},
		step{name: "http_topic_update_unknown", args: []string{"topic", "update", "nosuch", "--perm", "R"}, code: 1, errHas: "no such topic: nosuch"},
		step{name: "http_msg_send", args: []string{"msg", "send", "--topic", "h-orders", "--tags", "TagA", "--keys", "h-order-1"}, stdin: "one\ntwo\nthree\nfour\n"},
	)
	waitMessages("h-orders", 4)
	doHTTP(
		step{name: "http_msg_send_readonly", args: []string{"msg", "send", "--topic", "h-audit"}, stdin: "x\n", code: 1, errHas: "sent 0 messages to h-audit"},
		step{name: "http_topic_describe", args: []string{"topic", "describe", "h-orders"}},
		step{name: "http_msg_consume", args: []string{"msg", "consume", "--topic", "h-orders", "--group", "hg1", "--from-beginning", "--max", "3", "--no-commit"}},
		step{name: "http_msg_consume_json", args: []string{"msg", "consume", "--topic", "h-orders", "--group", "hg1", "--from-beginning", "--no-commit", "-o", "json"}},
		step{name: "http_msg_consume_commit", args: []string{"msg", "consume", "--topic", "h-orders", "--group", "hgc", "--from-beginning", "--max", "2"}},
		step{name: "http_msg_consume_after_commit", args: []string{"msg", "consume", "--topic", "h-orders", "--group", "hgc", "--no-commit"}},
		step{name: "http_msg_query", args: []string{"msg", "query", "--topic", "h-orders", "--key", "h-order-1"}},
		step{name: "http_group_create", args: []string{"group", "create", "hg3", "--retry-max", "2", "--broadcast=false"}},
		step{name: "http_group_create_exists", args: []string{"group", "create", "hg3"}, code: 1, errHas: "already exists"},
		step{name: "http_group_update", args: []string{"group", "update", "hg3", "--consume-enable=false"}},
		step{name: "http_group_update_unknown", args: []string{"group", "update", "nosuch", "--retry-max", "1"}, code: 1, errHas: "no such group: nosuch"},
		step{name: "http_group_describe", args: []string{"group", "describe", "hg3"}},
		step{name: "http_group_create_hg1", args: []string{"group", "create", "hg1"}},
		step{name: "http_offset_reset_dry", args: []string{"offset", "reset", "hg1", "--topic", "h-orders", "--to-earliest"}},
		step{name: "http_offset_reset_execute", args: []string{"offset", "reset", "hg1", "--topic", "h-orders", "--to-offset", "1", "--execute", "--yes", "-o", "json"}},
		step{name: "http_offset_reset_unknown_topic", args: []string{"offset", "reset", "hg1", "--topic", "nosuch", "--to-latest"}, code: 1, errHas: "no such topic: nosuch"},
		step{name: "http_offset_reset_unknown_group", args: []string{"offset", "reset", "nosuch", "--topic", "h-orders", "--to-latest"}, code: 1, errHas: "no such group: nosuch"},
		step{name: "http_group_lag", args: []string{"group", "lag", "hg1"}},
		step{name: "http_msg_consume_committed", args: []string{"msg", "consume", "--topic", "h-orders", "--group", "hg1", "--no-commit"}},
	)

	out, _, code = ferry(t, "", append([]string{"msg", "query", "--topic", "h-orders", "--key", "h-order-1", "-o", "json"}, hs...)...)
	var hq struct {
		Messages []admin.MessageView `json:"messages"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &hq) != nil || len(hq.Messages) != 4 {
		t.Fatalf("query over HTTP: exit %d, %s", code, out)
	}
	hid := hq.Messages[0].MsgID
	doHTTP(
		step{name: "http_msg_get", args: []string{"msg", "get", hid}},
		step{name: "http_msg_get_offset_id", args: []string{"msg", "get", hq.Messages[1].OffsetMsgID, "-o", "json"}},
		step{name: "http_msg_resend_readonly", args: []string{"msg", "resend", hid, "--topic", "h-audit"}, code: 1, errHas: "h-audit"},
		step{name: "http_msg_resend_ok", args: []string{"msg", "resend", hid}},
	)

	// Dead letters of hg1, resent over HTTP.
	for _, m := range hq.Messages[:2] {
		resp, err := rc.Invoke(ctx, srv.broker, remoting.NewRequest(protocol.ReqConsumerSendMsgBack, map[string]string{
			"group": "hg1", "offset": strconv.FormatInt(m.CommitlogOffset, 10), "delayLevel": "-1",
			"originMsgId": m.MsgID, "originTopic": "h-orders", "maxReconsumeTimes": "16",
		}, nil))
		if err != nil || resp.Code != protocol.RespSuccess {
			t.Fatalf("send back: %v %+v", err, resp)
		}
	}
	{
		var dls any
		var err error
		if ipoll.Until(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
			got, derr := a.DeadLetters(ctx, "hg1", 0)
			dls, err = got, derr
			return err == nil && len(got) == 2
		}) != nil {
			t.Fatalf("dead letters: %v %v", dls, err)
		}
	}
	doHTTP(
		step{name: "http_dlq_list", args: []string{"dlq", "list", "hg1"}},
		step{name: "http_dlq_list_json", args: []string{"dlq", "list", "hg1", "--all", "-o", "json"}},
		step{name: "http_dlq_show", args: []string{"dlq", "show", "hg1", "--ids", hid}},
		step{name: "http_group_lag_retry", args: []string{"group", "lag", "hg1", "--include-retry"}},
		step{name: "http_dlq_resend_ids", args: []string{"dlq", "resend", "hg1", "--ids", hid, "--yes"}},
		step{name: "http_dlq_resend_unknown", args: []string{"dlq", "resend", "hg1", "--ids", "NOPE", "--yes"}, code: 1, errHas: "NOPE"},
		step{name: "http_dlq_resend_all", args: []string{"dlq", "resend", "hg1", "--all", "--yes", "--to-retry", "-o", "json"}},
		step{name: "http_dlq_list_after_resend", args: []string{"dlq", "list", "hg1"}},
	)

	doHTTP(
		step{name: "http_broker_config_set", args: []string{"broker", "config", "set", "retry_max_times=6"}},
		step{name: "http_broker_config_get", args: []string{"broker", "config", "get", "retry_max_times"}},
		step{name: "http_broker_config_other_broker", args: []string{"broker", "config", "get", "--broker", "nosuch"}, code: 1, errHas: "no such broker"},
		step{name: "http_broker_drain", args: []string{"broker", "drain", "--yes"}},
		step{name: "http_broker_drained_status", args: []string{"broker", "status"}},
		step{name: "http_msg_send_drained", args: []string{"msg", "send", "--topic", "h-orders"}, stdin: "x\n", code: 1, errHas: "drained"},
		step{name: "http_broker_undrain", args: []string{"broker", "undrain"}},
		step{name: "http_group_delete", args: []string{"group", "delete", "hg3", "--yes"}},
		step{name: "http_group_delete_unknown", args: []string{"group", "delete", "hg3", "--yes"}, code: 1, errHas: "no such group: hg3"},
		step{name: "http_topic_delete", args: []string{"topic", "delete", "h-audit", "--yes"}},
		step{name: "http_topic_delete_unknown", args: []string{"topic", "delete", "h-audit", "--yes"}, code: 1, errHas: "no such topic: h-audit"},
		step{name: "http_topic_describe_deleted", args: []string{"topic", "describe", "h-audit"}, code: 1, errHas: "no such topic: h-audit"},
	)
}

// TestOpsErrors checks the error paths and their exit codes.
func TestOpsErrors(t *testing.T) {
	startServer(t)
	ns := []string{"--namesrv", srv.namesrv}
	steps := []step{
		{name: "err_unknown_group", args: []string{"group", "lag", "nosuch"}, code: 1, errHas: "no such group: nosuch"},
		{name: "err_unknown_group_clients", args: []string{"group", "clients", "nosuch"}, code: 1, errHas: "no such group"},
		{name: "err_unknown_group_dlq", args: []string{"dlq", "list", "nosuch"}, code: 1, errHas: "no such group"},
		{name: "err_unknown_topic", args: []string{"topic", "describe", "nosuch"}, code: 1, errHas: "no such topic: nosuch"},
		{name: "err_unknown_topic_route", args: []string{"topic", "route", "nosuch"}, code: 1, errHas: "no such topic"},
		{name: "err_unknown_message", args: []string{"msg", "get", "0123456789ABCDEF0123456789ABCDEF"}, code: 1, errHas: "no such message"},
		{name: "err_bad_flag", args: []string{"topic", "list", "--bogus"}, code: 2, errHas: "flag provided but not defined"},
		{name: "err_bad_output", args: []string{"topic", "list", "-o", "yaml"}, code: 2, errHas: "want table or json"},
		{name: "err_missing_arg", args: []string{"group", "lag"}, code: 2, errHas: "missing argument"},
		{name: "err_extra_arg", args: []string{"topic", "describe", "a", "b"}, code: 2, errHas: "unexpected argument"},
		{name: "err_unknown_command", args: []string{"topic", "frobnicate"}, code: 2, errHas: "unknown command"},
		{name: "err_delete_no_yes", args: []string{"topic", "delete", "orders"}, code: 2, errHas: "without --yes"},
		{name: "err_group_delete_no_yes", args: []string{"group", "delete", "g1"}, code: 2, errHas: "without --yes"},
		{name: "err_drain_no_yes", args: []string{"broker", "drain"}, code: 2, errHas: "without --yes"},
		{name: "err_reset_no_target", args: []string{"offset", "reset", "g1", "--topic", "orders"}, code: 2, errHas: "exactly one"},
		{name: "err_reset_no_yes", args: []string{"offset", "reset", "g1", "--topic", "orders", "--to-latest", "--execute"}, code: 2, errHas: "without --yes"},
		{name: "err_send_no_topic", args: []string{"msg", "send"}, code: 2, errHas: "--topic is required"},
		{name: "err_dlq_resend_nothing", args: []string{"dlq", "resend", "g1"}, code: 2, errHas: "--ids or --all"},
		{name: "err_dlq_resend_ids_no_yes", args: []string{"dlq", "resend", "g1", "--ids", "X"}, code: 2, errHas: "without --yes"},
	}
	for _, s := range steps {
		s.check(t, ns...)
	}
	// Flags after the positional argument work too.
	step{args: []string{"topic", "describe", "nosuch", "-o", "json"}, code: 1}.check(t, ns...)

	// An unreachable name server: exit 1 and a message that says so.
	step{name: "err_unreachable", args: []string{"topic", "list", "--namesrv", "127.0.0.1:1", "--timeout", "5s"}, code: 1,
		errHas: "no name server reachable at 127.0.0.1:1"}.check(t)
	t.Setenv("FERRY_NAMESRV", "127.0.0.1:1")
	step{args: []string{"cluster", "list"}, code: 1, errHas: "set --namesrv or FERRY_NAMESRV"}.check(t)
	t.Setenv("FERRY_NAMESRV", srv.namesrv)
	step{args: []string{"cluster", "list", "--interval", "0"}}.check(t)

	// The same errors through the broker's HTTP API.
	hs := []string{"--namesrv", "http://" + srv.http}
	for _, s := range steps {
		if s.code != 1 {
			continue
		}
		s.name += ".http"
		if s.args[1] == "route" {
			s.errHas = "name-server endpoint" // routes come from the name servers only
		}
		s.check(t, hs...)
	}
	step{name: "err_unreachable.http", args: []string{"topic", "list", "--namesrv", "http://127.0.0.1:1", "--timeout", "5s"}, code: 1,
		errHas: "broker HTTP API at http://127.0.0.1:1"}.check(t)
}

// TestOpsReorder checks that flags after positional arguments are moved in
// front of them.
func TestOpsReorder(t *testing.T) {
	cmds := opsCommands()
	for _, c := range []struct{ in, want string }{
		{"ferry group lag g1 -o json", "ferry group lag -o json -- g1"},
		{"ferry group lag g1 --include-retry --timeout 5s", "ferry group lag --include-retry --timeout 5s -- g1"},
		{"ferry topic list", "ferry topic list"},
		{"ferry msg get -- -x", "ferry msg get -- -x"},
		{"ferry server --data-dir d", "ferry server --data-dir d"},
	} {
		got := strings.Join(opsReorder(strings.Fields(c.in), cmds), " ")
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}
