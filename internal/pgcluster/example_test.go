package pgcluster_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/internal/pgcluster"
)

// A durable cluster under .tenantry, reused (data and port) on the next run.
func ExampleStart() {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, &pgcluster.Config{Dir: ".tenantry", Durable: true})
	if err != nil {
		log.Fatal(err) // says what to install when the binaries are missing
	}
	defer c.Stop(context.Background())

	pool, err := pgxpool.New(ctx, c.ConnString("postgres"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
}
