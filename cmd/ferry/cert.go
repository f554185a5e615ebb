package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/certs"
)

// certCommand makes TLS material for development.
func certCommand() *cli.Command {
	return &cli.Command{
		Name:  "cert",
		Usage: "TLS certificates",
		Subcommands: []*cli.Command{{
			Name:  "dev",
			Usage: "write a self-signed development certificate and key (ferry-dev.crt, ferry-dev.key)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Value: ".", Usage: "directory to write into (existing files are not overwritten)"},
				&cli.StringFlag{Name: "hosts", Value: "localhost,127.0.0.1,::1", Usage: "comma-separated DNS names and IPs the certificate is valid for"},
				&cli.IntFlag{Name: "days", Value: 365, Usage: "validity in days"},
			},
			Action: func(c *cli.Context) error {
				var hosts []string
				for _, h := range strings.Split(c.String("hosts"), ",") {
					if h = strings.TrimSpace(h); h != "" {
						hosts = append(hosts, h)
					}
				}
				cert, key, err := certs.WriteDev(c.String("dir"), hosts, c.Int("days"))
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				fmt.Fprintf(c.App.Writer, "wrote %s and %s\nserve:  ferry server --tls-cert %s --tls-key %s\ntrust:  curl --cacert %s ...; ferry --tls --ca %s ...\n",
					cert, key, cert, key, cert, cert)
				return nil
			},
		}},
	}
}
