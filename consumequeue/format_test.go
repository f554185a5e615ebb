package consumequeue

import (
	"encoding/hex"
	"errors"
	"testing"
)

func TestEntryGolden(t *testing.T) {
	e := Entry{Offset: 0x0102030405060708, Size: 0x0A0B0C0D, TagsCode: -2}
	got := hex.EncodeToString(appendEntry(nil, &e))
	const want = "0102030405060708" + "0a0b0c0d" + "fffffffffffffffe"
	if got != want {
		t.Fatalf("entry bytes\n got %s\nwant %s", got, want)
	}
	b, _ := hex.DecodeString(want)
	if d := decodeEntry(b, 7); d != (Entry{QueueOffset: 7, Offset: e.Offset, Size: e.Size, TagsCode: e.TagsCode}) {
		t.Fatalf("decoded %+v", d)
	}
}

func TestTagsCode(t *testing.T) {
	// Values of Java's "...".hashCode() (sign-extended); non-ASCII ones
	// worked out from the UTF-16 definition s[0]*31^(n-1) + ... + s[n-1].
	cases := []struct {
		tag  string
		want int64
	}{
		{"", 0},
		{"TagA", 2598919},
		{"TagB", 2598920},
		{"Aa", 2112},
		{"BB", 2112},
		{"hello world", 1794106052},
		{"polygenelubricants", -2147483648},  // Integer.MIN_VALUE
		{"é", 0xE9},                          // one code unit
		{"中文", 0x4E2D*31 + 0x6587},           // 646394
		{"😀", 0xD83D*31 + 0xDE00},            // U+1F600 as a surrogate pair: 1772899
		{"a😀", (0x61*31+0xD83D)*31 + 0xDE00}, // 1866116
	}
	for _, c := range cases {
		if got := TagsCode(c.tag); got != c.want {
			t.Errorf("TagsCode(%q) = %d, want %d", c.tag, got, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	if got := fileName(300000); got != "00000000000006000000" {
		t.Fatalf("fileName = %s", got)
	}
	if off, ok := parseFileName("00000000000006000000"); !ok || off != 6000000 {
		t.Fatalf("parseFileName = %d %v", off, ok)
	}
	for _, c := range []struct{ topic, dir string }{
		{"TopicTest", "TopicTest"},
		{"%RETRY%group-1|x_y", "%RETRY%group-1|x_y"},
		{"..", "~2e2e"},
		{"a/b", "~612f62"},
		{"dispatch.checkpoint", "~64697370617463682e636865636b706f696e74"},
	} {
		if got := topicDirName(c.topic); got != c.dir {
			t.Errorf("topicDirName(%q) = %q, want %q", c.topic, got, c.dir)
		}
		if back, ok := parseTopicDirName(c.dir); !ok || back != c.topic {
			t.Errorf("parseTopicDirName(%q) = %q %v", c.dir, back, ok)
		}
	}
	for _, bad := range []string{"", "~", "~zz", "dispatch.checkpoint", "dispatch.checkpoint.tmp"} {
		if _, ok := parseTopicDirName(bad); ok {
			t.Errorf("parseTopicDirName(%q) accepted", bad)
		}
	}
}

func TestCheckpointCodec(t *testing.T) {
	c := checkpoint{queues: 123456, listeners: 1000}
	b := encodeCheckpoint(c)
	const want = "4645525259435143" + "00000001" + "000000000001e240" + "00000000000003e8"
	if got := hex.EncodeToString(b[:len(b)-4]); got != want {
		t.Fatalf("checkpoint bytes\n got %s\nwant %s", got, want)
	}
	if d, err := decodeCheckpoint(b); err != nil || d != c {
		t.Fatalf("decoded %+v %v", d, err)
	}
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 0x40
		if _, err := decodeCheckpoint(bad); !errors.Is(err, ErrBadCheckpoint) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	if _, err := decodeCheckpoint(b[:len(b)-1]); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatal("short checkpoint accepted")
	}
}
