package store

import (
	"context"
	"path/filepath"
	"testing"
)

func BenchmarkAuthenticate(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "r.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_, _ = s.CreateOrg(ctx, "acme")
	tok, secret, _ := s.CreateToken(ctx, "acme", NewTokenOpts{})
	b.Run("Authenticate", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.Authenticate(ctx, secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("TokenByID", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.TokenByID(ctx, tok.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
