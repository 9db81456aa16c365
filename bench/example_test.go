package bench_test

import (
	"context"
	"os"

	"github.com/tenantry/tenantry/bench"
)

// Run the data-plane benchmark against servers of your own and print the
// ratio table.
func Example() {
	rep, err := bench.Run(context.Background(), &bench.Config{
		PrimaryURL: "postgres://postgres@127.0.0.1:5432/postgres",
		ShardURLs:  []string{"postgres://postgres@127.0.0.1:5433/postgres"},
	})
	if err != nil {
		panic(err)
	}
	_ = rep.WriteMarkdown(os.Stdout)
}
