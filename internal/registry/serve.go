package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ListenAndServe listens on the configured address (and on MetricsAddr
// for /metrics) and serves until ctx is done, then shuts down gracefully.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("registry listen: %w", err)
	}
	if s.cfg.MetricsAddr == "" {
		return s.Serve(ctx, ln)
	}
	mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("registry metrics listen: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.serve(ctx, mln, s.MetricsHandler(), false) }()
	err = s.Serve(ctx, ln)
	if merr := <-errc; err == nil {
		err = merr
	}
	return err
}

// Serve serves on ln (TLS when configured) until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handler, s.cfg.TLS.Certificate != "")
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler, useTLS bool) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.Limits.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.Limits.IdleTimeout,
		// Bodies and responses are paced per transfer (guard.go), not
		// bounded in total: a large layer may take long on a slow link.
	}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLS.Certificate, s.cfg.TLS.Key)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("registry tls: %w", err)
		}
		if len(cert.Certificate) > 0 {
			if s.tlsLeaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				_ = ln.Close()
				return fmt.Errorf("registry tls: %w", err)
			}
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("registry serving", "addr", ln.Addr().String(), "tls", useTLS)
	select {
	case err := <-errc:
		return fmt.Errorf("registry serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("registry shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry serve: %w", err)
	}
	return nil
}
