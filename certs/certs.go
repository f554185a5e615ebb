// Package certs builds the TLS configurations of Ferry's ports and
// clients: a server key pair that is reloaded when its files change, an
// optional CA for client certificates, client configurations trusting a
// CA file, and self-signed development certificates.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// recheck is how often a handshake may look at the key pair's files.
const recheck = time.Second

// Reloader serves a key pair from two PEM files and reloads it, on the
// next handshake at most once a second, when either file's size or
// modification time changed. A pair that fails to load keeps the old one
// in use and is logged. It starts no goroutine.
type Reloader struct {
	certFile, keyFile string
	log               zerolog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

// NewReloader loads the pair (an error if it cannot).
func NewReloader(certFile, keyFile string, log zerolog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, time.Now()
	return r, nil
}

func (r *Reloader) stampFiles() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("certs: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < recheck {
		return r.cert, nil
	}
	r.checked = time.Now()
	stamp, err := r.stampFiles()
	if err != nil || stamp == r.stamp {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Maybe half written: try again at the next check.
		r.log.Error().Err(err).Str("cert", r.certFile).Msg("tls: reloading the key pair failed; the previous one stays in use")
		return r.cert, nil
	}
	r.cert, r.stamp = &cert, stamp
	r.log.Info().Str("cert", r.certFile).Msg("tls: key pair reloaded")
	return r.cert, nil
}

// Server returns a server configuration for certFile and keyFile
// (reloaded on change); when clientCAFile is set, clients must present a
// certificate that chains to it.
func Server(certFile, keyFile, clientCAFile string, log zerolog.Logger) (*tls.Config, error) {
	r, err := NewReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client returns a client configuration: it trusts caFile (system roots
// when empty), skips verification when insecure (development only), and
// presents certFile/keyFile when given.
func Client(caFile string, insecure bool, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("certs: client key pair: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// Template is what Generate puts in a certificate.
type Template struct {
	// Hosts are DNS names and IP addresses the certificate is valid for.
	Hosts     []string
	NotBefore time.Time
	NotAfter  time.Time
	// IsCA makes a certificate that can sign others.
	IsCA bool
}

// Generate makes an ECDSA P-256 certificate and key, self-signed when
// parent is nil, and returns them PEM-encoded.
func Generate(t Template, parent *tls.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Ferry development"}, CommonName: "ferry"},
		NotBefore:             t.NotBefore,
		NotAfter:              t.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  t.IsCA || parent == nil,
	}
	for _, h := range t.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		if signer, err = x509.ParseCertificate(parent.Certificate[0]); err != nil {
			return nil, nil, err
		}
		signerKey = parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// WriteDev writes a self-signed development certificate and key for hosts
// (localhost and 127.0.0.1 when empty), valid for days, to dir as
// ferry-dev.crt and ferry-dev.key, and returns their paths. Existing files
// are not overwritten.
func WriteDev(dir string, hosts []string, days int) (certFile, keyFile string, err error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	if days <= 0 {
		return "", "", errors.New("certs: days must be positive")
	}
	now := time.Now()
	certPEM, keyPEM, err := Generate(Template{Hosts: hosts, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, days)}, nil)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "ferry-dev.crt"), filepath.Join(dir, "ferry-dev.key")
	if err := writeNew(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := writeNew(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("certs: %w", err)
	}
	return f.Close()
}
