package pgcluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tenantry/tenantry/internal/pgcluster"
)

// BenchmarkStart measures a cluster's start until it accepts connections,
// and its stop: "Fresh" includes initdb, "Reuse" starts an existing dir.
//
//	go test -run '^$' -bench Start -benchtime 5x ./internal/pgcluster/
func BenchmarkStart(b *testing.B) {
	base, err := os.MkdirTemp("", "pgcluster-bench-")
	if err != nil {
		b.Fatal(err)
	}
	_ = os.Chmod(base, 0o755)
	b.Cleanup(func() { _ = os.RemoveAll(base) })

	b.Run("Fresh", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			dir := filepath.Join(base, "fresh", string(rune('a'+i%26))+string(rune('a'+i/26%26)))
			c, err := pgcluster.Start(context.Background(), &pgcluster.Config{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Reuse", func(b *testing.B) {
		dir := filepath.Join(base, "reuse")
		c, err := pgcluster.Start(context.Background(), &pgcluster.Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Stop(context.Background())
		for b.Loop() {
			c, err := pgcluster.Start(context.Background(), &pgcluster.Config{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
