package namesrv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/controlplane"
	"github.com/ferrymq/ferry/internal/zslog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Defaults of Config.
const (
	DefaultListenAddr   = ":9876"
	DefaultScanInterval = 10 * time.Second
)

// Config configures a name server. The zero value listens on :9876 with the
// Java timings.
type Config struct {
	// ListenAddr is the TCP address to listen on; port 0 picks a free port
	// (see Server.Addr).
	ListenAddr string
	// BrokerExpiry drops brokers silent for longer (default 120 s).
	BrokerExpiry time.Duration
	// ScanInterval is how often silent brokers are looked for (default 10 s).
	ScanInterval time.Duration
	// Now is the clock (default time.Now); tests inject a fake one.
	Now func() time.Time
	// Logger: zero value disabled.
	Logger zerolog.Logger
	// Remoting tunes the transport (frame limit, in-flight bound). Its
	// Logger is replaced by Logger.
	Remoting remoting.ServerConfig
	// Controller, if set, runs a voter of the control plane in this name
	// server and serves its requests on the remoting port. Its Logger is
	// replaced by Logger; an empty NamesrvAddr is derived from this
	// server's port and the control port's host.
	Controller *controlplane.Config
	// ACLFile names a RocketMQ plain_acl.yml: clients' requests are then
	// signed and checked (package acl).
	ACLFile string
	// ClusterSecret, when set, must sign broker registration and
	// unregistration.
	ClusterSecret string
	// TLS, when set, serves the port with TLS.
	TLS *tls.Config
}

// Validate fills defaults and checks the limits.
func (c *Config) Validate() error {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.BrokerExpiry == 0 {
		c.BrokerExpiry = DefaultBrokerExpiry
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.BrokerExpiry < 0 {
		return fmt.Errorf("namesrv: BrokerExpiry %v must be positive: brokers register every 30 s", c.BrokerExpiry)
	}
	if c.ScanInterval < 0 {
		return fmt.Errorf("namesrv: ScanInterval %v must be positive", c.ScanInterval)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server is a name server: a Registry served over remoting.
//
// Goroutines: the remoting accept loop and the expiry scanner, both started
// by Start and gone when Shutdown returns.
type Server struct {
	cfg Config
	log zerolog.Logger
	reg *Registry
	rs  *remoting.Server
	mux *remoting.Mux
	acl *acl.Watcher // nil: no ACL file
	// ctlMux serves the control plane's requests once Start opened it.
	ctlMux *remoting.Mux
	quit   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	ln      net.Listener
	watched map[uint64]struct{} // connections with an OnClose hook installed
	ctl     *controlplane.Node  // set by Start before serving; nil without Controller
}

// New builds a name server; it does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		reg:     NewRegistry(cfg.Now, cfg.BrokerExpiry),
		mux:     remoting.NewMux(),
		ctlMux:  remoting.NewMux(),
		quit:    make(chan struct{}),
		watched: make(map[uint64]struct{}),
	}
	s.mux.HandleFunc(protocol.ReqRegisterBroker, s.registerBroker)
	s.mux.HandleFunc(protocol.ReqUnregisterBroker, s.unregisterBroker)
	s.mux.HandleFunc(protocol.ReqGetRouteInfoByTopic, s.getRouteInfo)
	s.mux.HandleFunc(protocol.ReqGetBrokerClusterInfo, s.getClusterInfo)
	s.mux.HandleFunc(protocol.ReqGetAllTopicListFromNameServer, s.getAllTopics)
	s.mux.HandleFunc(protocol.ReqDeleteTopicInNameServer, s.deleteTopic)
	if cfg.Controller != nil {
		s.ctlRoutes()
	}
	rcfg := cfg.Remoting
	rcfg.Logger = zslog.New(cfg.Logger)
	var h remoting.Handler = s.mux
	if cfg.ACLFile != "" || cfg.ClusterSecret != "" {
		rules := func() *acl.Rules { return nil }
		if cfg.ACLFile != "" {
			w, err := acl.Watch(cfg.ACLFile, 0, cfg.Logger)
			if err != nil {
				return nil, fmt.Errorf("namesrv: %w", err)
			}
			s.acl, rules = w, w.Rules
		}
		if cfg.ClusterSecret == "" {
			s.log.Warn().Msg("namesrv: broker registration is not authenticated: set a cluster secret")
		}
		h = acl.NewGuard(s.mux, acl.GuardConfig{Rules: rules, ClusterSecret: cfg.ClusterSecret, Audit: acl.NewAudit(cfg.Logger, 0)})
	}
	s.rs = remoting.NewServer(h, rcfg)
	return s, nil
}

// Registry exposes the routing state (for tests and the admin API).
func (s *Server) Registry() *Registry { return s.reg }

// Start listens and starts serving and scanning.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("namesrv: listen %s: %w", s.cfg.ListenAddr, err)
	}
	if err := s.startController(ln.Addr()); err != nil {
		ln.Close()
		return err
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.rs.Serve(ln); err != nil && !errors.Is(err, remoting.ErrServerClosed) {
			s.log.Error().Err(err).Msg("namesrv: serve stopped")
		}
	}()
	go func() {
		defer s.wg.Done()
		s.scan()
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("namesrv: listening")
	return nil
}

// Addr returns the bound address ("ip:port"), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops the scanner and the remoting server (in-flight requests
// are answered first, bounded by ctx).
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	err := s.rs.Shutdown(ctx)
	s.wg.Wait()
	if s.ctl != nil {
		if cerr := s.ctl.Close(); err == nil {
			err = cerr
		}
	}
	if s.acl != nil {
		_ = s.acl.Close()
	}
	return err
}

// Run starts the server, serves until ctx ends, then shuts down (allowing
// 5 s for in-flight requests).
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// scan drops silent brokers every ScanInterval until Shutdown.
func (s *Server) scan() {
	t := time.NewTicker(s.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			for _, b := range s.reg.Expire() {
				s.log.Warn().Str("cluster", b.Cluster).Str("broker", b.BrokerName).
					Str("addr", b.BrokerAddr).Int64("broker_id", b.BrokerID).
					Msg("namesrv: broker expired")
			}
		}
	}
}

// watchConn drops the brokers registered over c when it closes.
func (s *Server) watchConn(c *remoting.Conn) {
	s.mu.Lock()
	if _, ok := s.watched[c.ID()]; ok {
		s.mu.Unlock()
		return
	}
	s.watched[c.ID()] = struct{}{}
	s.mu.Unlock()
	id := c.ID()
	c.OnClose(func() {
		s.mu.Lock()
		delete(s.watched, id)
		s.mu.Unlock()
		for _, b := range s.reg.ConnClosed(id) {
			s.log.Info().Str("broker", b.BrokerName).Str("addr", b.BrokerAddr).
				Msg("namesrv: broker connection closed, removed")
		}
	})
}

func reply(c *remoting.Conn, resp *remoting.Command) { _ = c.Reply(resp) }

func systemError(c *remoting.Conn, req *remoting.Command, err error) {
	reply(c, remoting.NewResponse(req, protocol.RespSystemError, err.Error()))
}

func (s *Server) registerBroker(c *remoting.Conn, req *remoting.Command) {
	h, err := remoting.ParseRegisterBrokerHeader(req)
	if err != nil {
		systemError(c, req, err)
		return
	}
	if h.BodyCRC32 != 0 && h.BodyCRC32 != remoting.BodyCRC32(req.Body) {
		reply(c, remoting.NewResponse(req, protocol.RespSystemError, "crc32 not match"))
		return
	}
	if h.Compressed {
		reply(c, remoting.NewResponse(req, protocol.RespSystemError, "namesrv: compressed register body not supported"))
		return
	}
	reg := Registration{
		Cluster: h.ClusterName, BrokerName: h.BrokerName, BrokerAddr: h.BrokerAddr,
		HAServerAddr: h.HAServerAddr, HTTPAddr: h.HTTPAddr, BrokerID: h.BrokerID, ConnID: c.ID(),
	}
	if len(req.Body) > 0 {
		var body remoting.RegisterBrokerBody
		if err := remoting.DecodeBody(req.Body, &body); err != nil {
			systemError(c, req, err)
			return
		}
		reg.Topics = body.TopicConfigSerializeWrapper.TopicConfigTable
		if reg.Topics == nil {
			reg.Topics = map[string]remoting.TopicConfig{}
		}
		reg.DataVersion = body.TopicConfigSerializeWrapper.DataVersion
	}
	s.watchConn(c)
	res, isNew := s.reg.Register(reg)
	if isNew {
		s.log.Info().Str("cluster", h.ClusterName).Str("broker", h.BrokerName).
			Str("addr", h.BrokerAddr).Int64("broker_id", h.BrokerID).Int("topics", len(reg.Topics)).
			Msg("namesrv: broker registered")
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if res.HAServerAddr != "" {
		resp.Set("haServerAddr", res.HAServerAddr)
	}
	if res.MasterAddr != "" {
		resp.Set("masterAddr", res.MasterAddr)
	}
	reply(c, resp)
}

func (s *Server) unregisterBroker(c *remoting.Conn, req *remoting.Command) {
	h, err := remoting.ParseUnregisterBrokerHeader(req)
	if err != nil {
		systemError(c, req, err)
		return
	}
	if s.reg.Unregister(h.ClusterName, h.BrokerName, h.BrokerAddr, h.BrokerID) {
		s.log.Info().Str("broker", h.BrokerName).Str("addr", h.BrokerAddr).Msg("namesrv: broker unregistered")
	}
	reply(c, remoting.NewResponse(req, protocol.RespSuccess, ""))
}

// NoRouteRemark is the remark of a TOPIC_NOT_EXIST answer to a route query.
func NoRouteRemark(topic string) string {
	return "No topic route info in name server for the topic: " + topic
}

func (s *Server) getRouteInfo(c *remoting.Conn, req *remoting.Command) {
	topic, err := req.String("topic")
	if err != nil {
		systemError(c, req, err)
		return
	}
	route, ok := s.reg.Route(topic)
	if !ok {
		reply(c, remoting.NewResponse(req, protocol.RespTopicNotExist, NoRouteRemark(topic)))
		return
	}
	body, err := route.Encode()
	if err != nil {
		systemError(c, req, err)
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	reply(c, resp)
}

func (s *Server) getClusterInfo(c *remoting.Conn, req *remoting.Command) {
	body, err := s.reg.ClusterInfo().Encode()
	if err != nil {
		systemError(c, req, err)
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	reply(c, resp)
}

func (s *Server) getAllTopics(c *remoting.Conn, req *remoting.Command) {
	body, err := (&remoting.TopicList{TopicList: s.reg.Topics()}).Encode()
	if err != nil {
		systemError(c, req, err)
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	reply(c, resp)
}

func (s *Server) deleteTopic(c *remoting.Conn, req *remoting.Command) {
	topic, err := req.String("topic")
	if err != nil {
		systemError(c, req, err)
		return
	}
	if s.reg.DeleteTopic(topic, req.StringOr("clusterName", "")) {
		s.log.Info().Str("topic", topic).Msg("namesrv: topic deleted")
	}
	reply(c, remoting.NewResponse(req, protocol.RespSuccess, ""))
}
