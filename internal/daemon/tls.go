package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// TLSFiles are a server's certificate and key and the CA its clients'
// certificates must be signed by (PEM files).
type TLSFiles struct {
	CA, Cert, Key string
}

func (f TLSFiles) set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

func (f TLSFiles) validate() error {
	if f.set() && (f.CA == "" || f.Cert == "" || f.Key == "") {
		return fmt.Errorf("--docker-tlscacert, --docker-tlscert and --docker-tlskey go together (clients must present certificates the CA signed): %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// config is a TLS 1.2+ server config that requires and verifies client
// certificates.
func (f TLSFiles) config() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("--docker-tlscert/--docker-tlskey: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("--docker-tlscacert: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--docker-tlscacert %s: no PEM certificate in it: %w", f.CA, errdefs.ErrInvalidArgument)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12}, nil
}
