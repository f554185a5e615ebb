package broker

// Receipt handles of leased consumption over HTTP (api_consume.go): what
// a handle encodes, its format, and the key that signs it.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/protocol"
)

// receipt is what a receipt handle encodes.
type receipt struct {
	topic   string
	queue   int32
	qoff    int64
	clogOff int64
	epoch   uint64
}

const (
	receiptVersion = 2
	receiptTagLen  = 12 // bytes of HMAC-SHA256 kept
)

// encode: version 2 | epoch uint64 BE | uvarint queue offset | uvarint
// commitlog offset | uvarint queue | topic | HMAC-SHA256 of all that
// under the broker's receipt key, truncated to receiptTagLen; base64url
// without padding. The tag tells a handle this broker issued (which may
// have expired) from a forged or mangled one.
func (r receipt) encode(key []byte) string {
	b := make([]byte, 0, 9+3*binary.MaxVarintLen64+len(r.topic)+sha256.Size)
	b = append(b, receiptVersion)
	b = binary.BigEndian.AppendUint64(b, r.epoch)
	b = binary.AppendUvarint(b, uint64(r.qoff))
	b = binary.AppendUvarint(b, uint64(r.clogOff))
	b = binary.AppendUvarint(b, uint64(r.queue))
	b = append(b, r.topic...)
	b = append(b, receiptTag(key, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func receiptTag(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(nil)[:receiptTagLen]
}

func decodeReceipt(s string, key []byte) (receipt, error) {
	var r receipt
	bad := fmt.Errorf("%w: %q", protocol.ErrHTTPReceiptInvalid, s)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 10+receiptTagLen || b[0] != receiptVersion {
		return r, bad
	}
	body, tag := b[:len(b)-receiptTagLen], b[len(b)-receiptTagLen:]
	if !hmac.Equal(tag, receiptTag(key, body)) {
		return r, fmt.Errorf("%w: %q was not issued by this broker", protocol.ErrHTTPReceiptInvalid, s)
	}
	b = body
	r.epoch = binary.BigEndian.Uint64(b[1:])
	b = b[9:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return r, bad
		}
		vals[i], b = v, b[n:]
	}
	if vals[0] > 1<<62 || vals[1] > 1<<62 || vals[2] > 1<<30 || ValidateTopic(string(b)) != nil {
		return r, bad
	}
	r.qoff, r.clogOff, r.queue, r.topic = int64(vals[0]), int64(vals[1]), int32(vals[2]), string(b)
	return r, nil
}

// loadReceiptKey reads the key that signs receipt handles from the
// metadata store (k/receipt), creating it on first start; kept, it makes a
// handle from before a restart read as expired, not as forged.
func (b *Broker) loadReceiptKey() error {
	const name = prefixKey + "receipt"
	v, closer, err := b.meta.db.Get([]byte(name))
	if err == nil {
		b.leases.receiptKey = append([]byte(nil), v...)
		return closer.Close()
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	b.leases.receiptKey = key
	return b.meta.db.Set([]byte(name), key, pebble.Sync)
}
