// Package acl authenticates and authorizes requests: accounts and white
// lists read from a RocketMQ 4.x plain_acl.yml file, the signature check
// of signed remoting requests, HTTP Basic credentials, the cluster secret,
// and the table of what each request needs.
//
// # The file
//
// plain_acl.yml, unchanged from RocketMQ:
//
//	globalWhiteRemoteAddresses:   # addresses admitted without any check
//	  - 10.10.103.*
//	accounts:
//	  - accessKey: RocketMQ       # longer than 6 characters
//	    secretKey: 12345678       # longer than 6 characters
//	    whiteRemoteAddress:       # this account's addresses: no signature or permission check
//	    admin: false              # admin request codes need true
//	    defaultTopicPerm: DENY    # for topics not listed; absent = DENY
//	    defaultGroupPerm: SUB     # for groups not listed; absent = DENY
//	    topicPerms: [topicA=DENY, topicB=PUB|SUB, topicC=SUB]
//	    groupPerms: [groupA=DENY, groupB=PUB|SUB, groupC=SUB]
//
// Permissions are DENY, PUB, SUB, PUB|SUB (SUB|PUB); anything else is DENY.
// A group's permission is its retry topic's (%RETRY%<group>), so a request
// on a retry topic is checked against the group. Address patterns:
// "192.168.0.1", "*", "192.168.*.*", "192.168.1-10.*", "192.168.0.5-50",
// "192.168.0.{1,2,3}", "192.168.0.1,192.168.0.2" (ranges are IPv4 only).
// A duplicate accessKey in one file is an error (RocketMQ keeps the first
// and warns).
//
// # Order of checks (RocketMQ's PlainPermissionManager.validate)
//
//  1. A client address in globalWhiteRemoteAddresses is admitted.
//  2. No AccessKey: refused ("unsigned"). An unknown one: "unknown-key".
//  3. A client address in the account's whiteRemoteAddress is admitted.
//  4. The Signature must match (see remoting.AppendSignContent): "signature".
//  5. An admin code needs admin: true ("admin"). An admin account without
//     topicPerms and groupPerms may touch every resource; otherwise each
//     resource needs its listed permission, or the default of its kind
//     ("permission"). ANY is met by PUB or SUB.
//
// Refusals are answered NO_PERMISSION (16) with a remark naming the check;
// the connection stays open.
//
// # Authenticated connections
//
// The Guard also serves FERRY_AUTH (protocol's auth.go): a connection that
// completed it is the account's. Its requests without an AccessKey then
// skip steps 2 and 4: after the global white list, the account's own white
// list admits; otherwise step 5 decides, with the account's permissions as
// the rules in force have them. A request with an AccessKey goes through
// every step above, whatever the connection. Handshake refusals are
// "malformed", "handshake" (a proof without a step 1: one proof per server
// nonce), "unknown-key" and "signature". After a reload that removes the
// account or changes its secret key, the connection's next request is
// refused ("revoked") and the connection closed.
//
// # What each request needs
//
//	code  request                              needs
//	  10  SEND_MESSAGE                         PUB on topic (SUB on the group for a %RETRY% topic)
//	 310  SEND_MESSAGE_V2                      PUB on topic "b" (same rule)
//	 320  SEND_BATCH_MESSAGE                   PUB on topic "b" (same rule)
//	  11  PULL_MESSAGE                         SUB on topic and on consumerGroup
//	  12  QUERY_MESSAGE                        SUB on topic
//	  14  QUERY_CONSUMER_OFFSET                SUB on topic and on consumerGroup
//	  15  UPDATE_CONSUMER_OFFSET               SUB on topic and on consumerGroup
//	  29  SEARCH_OFFSET_BY_TIMESTAMP           ANY on topic
//	  30  GET_MAX_OFFSET                       ANY on topic
//	  31  GET_MIN_OFFSET                       ANY on topic
//	  34  HEART_BEAT                           SUB on every consumer group and subscribed topic of the body
//	  35  UNREGISTER_CLIENT                    SUB on consumerGroup (when set)
//	  36  CONSUMER_SEND_MSG_BACK               SUB on group, PUB on originTopic
//	  37  END_TRANSACTION                      PUB on topic when the header names it, else any
//	                                           signed account (the broker checks the producer
//	                                           group and message id against the half)
//	  38  GET_CONSUMER_LIST_BY_GROUP           SUB on consumerGroup
//	  41  LOCK_BATCH_MQ                        SUB on the body's group and every queue's topic
//	  42  UNLOCK_BATCH_MQ                      same as 41
//	1001  Ferry DLQ list                       SUB on group
//	1020  FERRY_SEND_MULTI                     PUB on every topic of the body (same rule)
//	1030  FERRY_AUTH                           open: the connection handshake itself
//	 105  GET_ROUTEINFO_BY_TOPIC (name server) open, as on RocketMQ name servers
//	 106  GET_BROKER_CLUSTER_INFO (name server) open, as on RocketMQ name servers
//	  17  UPDATE_AND_CREATE_TOPIC              admin
//	  21  GET_ALL_TOPIC_CONFIG                 admin
//	  25  UPDATE_BROKER_CONFIG                 admin
//	  26  GET_BROKER_CONFIG                    admin
//	  28  GET_BROKER_RUNTIME_INFO              admin
//	  33  VIEW_MESSAGE_BY_ID                   admin (the id does not name a topic)
//	 200  UPDATE_AND_CREATE_SUBSCRIPTIONGROUP  admin
//	 201  GET_ALL_SUBSCRIPTIONGROUP_CONFIG     admin
//	 202  GET_TOPIC_STATS_INFO                 admin
//	 203  GET_CONSUMER_CONNECTION_LIST         admin
//	 206  GET_ALL_TOPIC_LIST_FROM_NAMESERVER   admin
//	 207  DELETE_SUBSCRIPTIONGROUP             admin
//	 208  GET_CONSUME_STATS                    admin
//	 215  DELETE_TOPIC_IN_BROKER               admin
//	 216  DELETE_TOPIC_IN_NAMESRV              admin
//	 222  INVOKE_BROKER_TO_RESET_OFFSET        admin
//	1002  Ferry DLQ resend                     admin
//	1003  Ferry drain                          admin
//	1004  Ferry undrain                        admin
//	1005  Ferry group list                     admin
//	1006  Ferry topic stats                    admin
//	1007  Ferry open transactions              admin
//	 103  REGISTER_BROKER (name server)        the cluster secret (open when none is set)
//	 104  UNREGISTER_BROKER (name server)      the cluster secret (open when none is set)
//	30001 Ferry INIT_PRODUCER_ID                any signed account (its sends need PUB)
//	1101  CONTROLLER_HEARTBEAT (name server)   the cluster secret (open when none is set)
//	1102  CONTROLLER_GET_STATE (name server)   open, as the cluster info
//	1103  CONTROLLER_ALTER_IN_SYNC (name srv)  the cluster secret (open when none is set)
//	1104  CONTROLLER_ELECT (name server)       admin
//	 any other code                            admin
//
// Route lookups stay open so that a client with wrong credentials learns
// why from the broker's answer (RocketMQ clients report a failed route
// lookup only as "route info not found").
//
// The cluster secret signs like an account whose access key is
// ClusterAccessKey; it is checked whether or not an ACL file is in force.
//
// # HTTP
//
// The HTTP API takes the same accounts as HTTP Basic credentials (access
// key as user, secret key as password; use TLS) and applies the same
// needs per route: see the route table in package httpapi (router.go).
package acl
