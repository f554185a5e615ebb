package remoting

import (
	"context"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/ferrymq/ferry/protocol"
)

// BodyCRC32 is the checksum REGISTER_BROKER carries in bodyCrc32: CRC32
// (IEEE) of the body masked to 31 bits, as Java's UtilAll.crc32 computes it.
func BodyCRC32(body []byte) int32 {
	return int32(crc32.ChecksumIEEE(body) & 0x7FFFFFFF)
}

// RegisterBrokerHeader is the extFields of REGISTER_BROKER (103).
type RegisterBrokerHeader struct {
	BrokerName   string
	BrokerAddr   string
	ClusterName  string
	HAServerAddr string
	BrokerID     int64
	Compressed   bool
	// BodyCRC32 is filled in by RegisterBroker; 0 means unchecked.
	BodyCRC32 int32
	// HTTPAddr is Ferry's own field "ferryHttpAddr": where the broker
	// serves its HTTP API ("ip:port"; empty: no HTTP). RocketMQ's name
	// servers ignore it; Ferry's list it in the cluster info.
	HTTPAddr string
}

// Ext renders the header as extFields.
func (h *RegisterBrokerHeader) Ext() map[string]string {
	ext := map[string]string{
		"brokerName":   h.BrokerName,
		"brokerAddr":   h.BrokerAddr,
		"clusterName":  h.ClusterName,
		"haServerAddr": h.HAServerAddr,
		"brokerId":     strconv.FormatInt(h.BrokerID, 10),
		"compressed":   strconv.FormatBool(h.Compressed),
		"bodyCrc32":    strconv.FormatInt(int64(h.BodyCRC32), 10),
	}
	if h.HTTPAddr != "" {
		ext["ferryHttpAddr"] = h.HTTPAddr
	}
	return ext
}

// ParseRegisterBrokerHeader reads the header from a REGISTER_BROKER request.
// brokerName, brokerAddr, clusterName and brokerId are required.
func ParseRegisterBrokerHeader(req *Command) (RegisterBrokerHeader, error) {
	var h RegisterBrokerHeader
	var err error
	if h.BrokerName, err = req.String("brokerName"); err != nil {
		return h, err
	}
	if h.BrokerAddr, err = req.String("brokerAddr"); err != nil {
		return h, err
	}
	if h.ClusterName, err = req.String("clusterName"); err != nil {
		return h, err
	}
	h.HAServerAddr = req.StringOr("haServerAddr", "")
	h.HTTPAddr = req.StringOr("ferryHttpAddr", "")
	if h.BrokerID, err = req.Int64("brokerId"); err != nil {
		return h, err
	}
	if h.Compressed, err = req.BoolOr("compressed", false); err != nil {
		return h, err
	}
	if h.BodyCRC32, err = req.Int32Or("bodyCrc32", 0); err != nil {
		return h, err
	}
	return h, nil
}

// RegisterBrokerResult is what a name server answers to REGISTER_BROKER:
// for a slave, the master's address and HA address.
type RegisterBrokerResult struct {
	HAServerAddr string
	MasterAddr   string
}

// RegisterBroker sends one REGISTER_BROKER request to the name server at
// nsAddr and waits for the answer (ctx bounds it). The body is encoded
// uncompressed and its checksum set in the header. A non-SUCCESS answer is a
// *ResponseError.
func RegisterBroker(ctx context.Context, cl *Client, nsAddr string, h RegisterBrokerHeader, body *RegisterBrokerBody) (RegisterBrokerResult, error) {
	b, err := body.Encode()
	if err != nil {
		return RegisterBrokerResult{}, fmt.Errorf("remoting: encode register body: %w", err)
	}
	h.Compressed = false
	h.BodyCRC32 = BodyCRC32(b)
	resp, err := cl.Invoke(ctx, nsAddr, NewRequest(protocol.ReqRegisterBroker, h.Ext(), b))
	if err != nil {
		return RegisterBrokerResult{}, err
	}
	if err := resp.Err(); err != nil {
		return RegisterBrokerResult{}, fmt.Errorf("remoting: register broker %s with %s: %w", h.BrokerName, nsAddr, err)
	}
	return RegisterBrokerResult{
		HAServerAddr: resp.StringOr("haServerAddr", ""),
		MasterAddr:   resp.StringOr("masterAddr", ""),
	}, nil
}

// UnregisterBrokerHeader is the extFields of UNREGISTER_BROKER (104).
type UnregisterBrokerHeader struct {
	BrokerName  string
	BrokerAddr  string
	ClusterName string
	BrokerID    int64
}

// Ext renders the header as extFields.
func (h *UnregisterBrokerHeader) Ext() map[string]string {
	return map[string]string{
		"brokerName":  h.BrokerName,
		"brokerAddr":  h.BrokerAddr,
		"clusterName": h.ClusterName,
		"brokerId":    strconv.FormatInt(h.BrokerID, 10),
	}
}

// ParseUnregisterBrokerHeader reads the header from an UNREGISTER_BROKER
// request; all four fields are required.
func ParseUnregisterBrokerHeader(req *Command) (UnregisterBrokerHeader, error) {
	var h UnregisterBrokerHeader
	var err error
	if h.BrokerName, err = req.String("brokerName"); err != nil {
		return h, err
	}
	if h.BrokerAddr, err = req.String("brokerAddr"); err != nil {
		return h, err
	}
	if h.ClusterName, err = req.String("clusterName"); err != nil {
		return h, err
	}
	if h.BrokerID, err = req.Int64("brokerId"); err != nil {
		return h, err
	}
	return h, nil
}

// UnregisterBroker sends one UNREGISTER_BROKER request to nsAddr.
func UnregisterBroker(ctx context.Context, cl *Client, nsAddr string, h UnregisterBrokerHeader) error {
	resp, err := cl.Invoke(ctx, nsAddr, NewRequest(protocol.ReqUnregisterBroker, h.Ext(), nil))
	if err != nil {
		return err
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("remoting: unregister broker %s from %s: %w", h.BrokerName, nsAddr, err)
	}
	return nil
}

// GetRouteInfo asks the name server at nsAddr for topic's route. An
// unknown topic is a *ResponseError with Code RespTopicNotExist.
func GetRouteInfo(ctx context.Context, cl *Client, nsAddr, topic string) (*TopicRouteData, error) {
	resp, err := cl.Invoke(ctx, nsAddr, NewRequest(protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil))
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	if len(resp.Body) == 0 {
		return nil, fmt.Errorf("%w: empty route for topic %q", ErrBadBody, topic)
	}
	return DecodeTopicRouteData(resp.Body)
}
