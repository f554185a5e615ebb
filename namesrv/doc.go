// Package namesrv is Ferry's name server: a registry of brokers and the
// topic routes built from what they report, served over the remoting
// protocol to brokers (REGISTER_BROKER, UNREGISTER_BROKER) and clients
// (GET_ROUTEINFO_BY_TOPIC, GET_BROKER_CLUSTER_INFO,
// GET_ALL_TOPIC_LIST_FROM_NAMESERVER, DELETE_TOPIC_IN_NAMESRV).
//
// Registry holds the state: a pure, lock-guarded structure with an injected
// clock and no goroutines, so routing rules are tested deterministically.
// Server wires it to a remoting.Server and owns one goroutine of its own, the
// scanner that drops brokers silent for longer than Config.BrokerExpiry.
//
// Routing rules:
//   - a broker is identified by its address; (cluster, brokerName, brokerId)
//     place it, brokerId 0 being the master;
//   - only the master's topic table builds a topic's queueDatas for its
//     brokerName; each registration replaces the master's earlier view, so
//     topics it no longer reports lose that broker's queues;
//   - a broker disappears on UNREGISTER_BROKER, when the connection it
//     registered over closes, or after BrokerExpiry without registering;
//     when the last address of a brokerName goes, its queues go too.
//
// Name servers never talk to each other about routes; brokers register with
// each. With Config.Controller set, a name server also runs a voter of the
// control plane (package controlplane), which the name servers replicate
// among themselves with raft over a separate control port, and serves its
// requests (protocol.ReqControllerHeartbeat and the rest) on the remoting port.
package namesrv
