package namesrv

import (
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"net"

	"github.com/ferrymq/ferry/controlplane"
	"github.com/ferrymq/ferry/remoting"
)

// ctlRoutes installs the control plane's requests; they reach the node
// opened by Start (requests are served only after it).
func (s *Server) ctlRoutes() {
	for _, code := range []int16{protocol.ReqControllerHeartbeat, protocol.ReqControllerGetState, protocol.ReqControllerAlterInSync, protocol.ReqControllerElect} {
		s.mux.HandleFunc(code, func(c *remoting.Conn, req *remoting.Command) {
			s.ctlMux.ServeRemoting(c, req)
		})
	}
}

// startController opens the control-plane node, if configured, announcing
// this name server at addr's port.
func (s *Server) startController(addr net.Addr) error {
	if s.cfg.Controller == nil {
		return nil
	}
	cc := *s.cfg.Controller
	cc.Logger = s.log.With().Str("component", "controlplane").Logger()
	if cc.NamesrvAddr == "" {
		_, port, _ := net.SplitHostPort(addr.String())
		cc.NamesrvAddr = net.JoinHostPort(controlHost(cc), port)
	}
	n, err := controlplane.Open(cc)
	if err != nil {
		return fmt.Errorf("namesrv: control plane: %w", err)
	}
	n.Handle(s.ctlMux)
	s.ctl = n
	return nil
}

// controlHost is the host brokers reach this name server at, as far as the
// control plane's configuration tells: this server's peer entry, else the
// control port's listen host, else loopback.
func controlHost(cc controlplane.Config) string {
	hostOf := func(a string) string {
		h, _, err := net.SplitHostPort(a)
		if err != nil || h == "" || net.ParseIP(h).IsUnspecified() {
			return ""
		}
		return h
	}
	for _, p := range cc.Peers {
		if p.ID == cc.ID {
			if h := hostOf(p.Addr); h != "" {
				return h
			}
		}
	}
	if cc.Listener != nil {
		if h := hostOf(cc.Listener.Addr().String()); h != "" {
			return h
		}
	}
	if h := hostOf(cc.ListenAddr); h != "" {
		return h
	}
	return "127.0.0.1"
}

// Controller returns the control-plane node, nil when it does not run.
func (s *Server) Controller() *controlplane.Node { return s.ctl }
