package broker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/apitest"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// BenchmarkBatchSendACL times one batch send of 32 × 1 KiB messages, one
// at a time, with ACL off, on with every request signed (the client
// signs, the broker checks), and on with the connection authenticated
// once (FERRY_AUTH): the differences are what each adds to a request.
func BenchmarkBatchSendACL(b *testing.B) {
	for _, mode := range []string{"off", "signed", "conn-auth"} {
		b.Run(mode, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.DataDir = b.TempDir()
			cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
			rc := remoting.ClientConfig{}
			if mode != "off" {
				cfg.ACLFile = apitest.ACLFile(b)
				rc.Credentials = remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}
				rc.Authenticate = mode == "conn-auth"
			}
			br, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := br.Start(); err != nil {
				b.Fatal(err)
			}
			defer br.Shutdown(context.Background())
			cl := remoting.NewClient(rc)
			defer cl.Close()
			body := make([]byte, 1024)
			var batch []byte
			for range 32 {
				batch = EncodeBatch(batch, []int32{0}, [][]byte{body}, [][]byte{nil})
			}
			req := remoting.NewRequest(protocol.ReqSendBatchMessage, map[string]string{
				"a": "bench", "b": "T", "c": "TBW102", "d": "4", "e": "0", "f": "0",
				"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0", "i": "", "j": "0", "k": "false", "l": "0", "m": "true",
			}, batch)
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				resp, err := cl.Invoke(context.Background(), br.Addr(), req)
				if err == nil {
					err = resp.Err()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
