package broker

import "testing"

func TestAPICommitAndReadOffsets(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "off", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Offsets []apiOffset `json:"offsets"`
	}
	a.ok("GET", "/v1/groups/pullers/offsets", nil, 200, &got)
	if len(got.Offsets) != 0 {
		t.Fatalf("a new group has offsets: %+v", got.Offsets)
	}
	a.ok("PUT", "/v1/groups/pullers/offsets", map[string]any{"offsets": []apiOffset{
		{Topic: "off", QueueID: 1, Offset: 7}, {Topic: "off", QueueID: 0, Offset: 3}}}, 200, nil)
	a.ok("GET", "/v1/groups/pullers/offsets?topic=off", nil, 200, &got)
	if len(got.Offsets) != 2 || got.Offsets[0] != (apiOffset{Topic: "off", QueueID: 0, Offset: 3}) || got.Offsets[1] != (apiOffset{Topic: "off", QueueID: 1, Offset: 7}) {
		t.Fatalf("offsets %+v", got.Offsets)
	}
	if off, ok := b.offsets.get("pullers", "off", 1); !ok || off != 7 {
		t.Fatalf("stored offset %d %v", off, ok)
	}
	// Bad input: unknown topic, queue out of range, negative offset, empty list.
	a.fails("PUT", "/v1/groups/pullers/offsets", map[string]any{"offsets": []apiOffset{{Topic: "nope", QueueID: 0, Offset: 1}}}, 404, 17)
	a.fails("PUT", "/v1/groups/pullers/offsets", map[string]any{"offsets": []apiOffset{{Topic: "off", QueueID: 2, Offset: 1}}}, 400, 1002)
	a.fails("PUT", "/v1/groups/pullers/offsets", map[string]any{"offsets": []apiOffset{{Topic: "off", QueueID: 0, Offset: -1}}}, 400, 1002)
	a.fails("PUT", "/v1/groups/pullers/offsets", map[string]any{"offsets": []apiOffset{}}, 400, 1002)
}
