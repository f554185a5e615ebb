// Package server runs a Ferry process: a name server, a broker, or both
// in one process (the broker then registers with the name server beside
// it first), until its context is cancelled. cmd/ferry parses the
// configuration and signals and calls Run; tests and embedders call it
// the same way.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/httpapi"
	"github.com/ferrymq/ferry/namesrv"
)

// DefaultShutdownTimeout bounds a graceful shutdown when Config has none.
const DefaultShutdownTimeout = 30 * time.Second

// Config is what Run starts. At least one of Namesrv and Broker is set.
type Config struct {
	// Namesrv, when not nil, runs a name server.
	Namesrv *namesrv.Config
	// Broker, when not nil, runs a broker with BrokerOptions, its HTTP
	// port served by package httpapi. With a name server beside it, the
	// broker registers with that one first (Run works on a copy: the
	// caller's config is not changed).
	Broker        *broker.Config
	BrokerOptions []broker.Option
	// Logger receives the process's lifecycle lines ("name server ready",
	// "shutting down", "stopped"); the servers' loggers are set in their
	// own configuration.
	Logger zerolog.Logger
	// ShutdownTimeout bounds the graceful shutdown after ctx is done
	// (0: DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// Ready, when not nil, is called once everything has started, with
	// the addresses it listens on.
	Ready func(Addrs)
}

// Addrs are the addresses a running process listens on; empty for what
// it does not run.
type Addrs struct {
	Namesrv string // remoting address of the name server
	Broker  string // remoting address of the broker
	HTTP    string // the broker's HTTP API
}

// ErrNothingToRun: the Config names neither a name server nor a broker.
var ErrNothingToRun = errors.New("server: nothing to run (no name server and no broker configured)")

// Run starts what cfg names, calls cfg.Ready, and serves until ctx is
// done; then it shuts everything down gracefully (the broker first, so
// it can unregister) and returns. A failure to start is returned at once,
// with whatever had started stopped again.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Namesrv == nil && cfg.Broker == nil {
		return ErrNothingToRun
	}
	log := cfg.Logger
	var (
		ns    *namesrv.Server
		br    *broker.Broker
		addrs Addrs
		err   error
	)
	if cfg.Namesrv != nil {
		ns, err = namesrv.New(*cfg.Namesrv)
		if err == nil {
			err = ns.Start()
		}
		if err != nil {
			return fmt.Errorf("name server: %w", err)
		}
		addrs.Namesrv = ns.Addr()
		_, port, _ := net.SplitHostPort(ns.Addr())
		log.Info().Str("component", "namesrv").Str("addr", ns.Addr()).Str("port", port).Msg("name server ready")
	}
	if cfg.Broker != nil {
		bc := *cfg.Broker
		if ns != nil {
			_, port, _ := net.SplitHostPort(ns.Addr())
			bc.NamesrvAddrs = append([]string{"127.0.0.1:" + port}, cfg.Broker.NamesrvAddrs...)
		}
		opts := append([]broker.Option{broker.WithHTTP(httpapi.Mount())}, cfg.BrokerOptions...)
		br, err = broker.New(bc, opts...)
		if err == nil {
			err = br.Start()
		}
		if err != nil {
			if br != nil {
				_ = br.Shutdown(context.Background())
			}
			if ns != nil {
				_ = ns.Shutdown(context.Background())
			}
			return fmt.Errorf("broker: %w", err)
		}
		addrs.Broker, addrs.HTTP = br.Addr(), br.HTTPAddr()
	}
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}

	<-ctx.Done()
	log.Info().Msg("shutting down")
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if br != nil {
		if err := br.Shutdown(sctx); err != nil {
			log.Error().Err(err).Msg("broker shutdown")
			errs = append(errs, fmt.Errorf("broker shutdown: %w", err))
		}
	}
	if ns != nil {
		if err := ns.Shutdown(sctx); err != nil {
			log.Error().Err(err).Msg("name server shutdown")
		}
	}
	log.Info().Msg("stopped")
	return errors.Join(errs...)
}
