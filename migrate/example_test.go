package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing/fstest"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/migrate/lint"
)

// Load reads migrations and the lint says what would block a busy table.
func ExampleLoad() {
	src, err := migrate.Load(fstest.MapFS{
		"0001_notes.sql": {Data: []byte("-- migrate:mode tx\nCREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));\n")},
		"0002_index.sql": {Data: []byte("-- migrate:mode tx\nCREATE INDEX notes_id ON notes (id);\n")},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range lint.Blocking(src.Lint()) {
		fmt.Printf("%s:%d %s\n", f.File, f.Line, f.Rule)
	}
	// Output:
	// 0002_index.sql:2 index-not-concurrent
}

// Up rolls the head of the source out to every target; Resume continues a
// run that halted or crashed.
func ExampleEngine_Up() {
	ctx := context.Background()
	var store *catalog.Store // catalog.NewStore(pool, nil), migrated
	src, _ := migrate.Load(fstest.MapFS{})
	engine, err := migrate.New(store, &migrate.Config{Source: src})
	if err != nil {
		log.Print(err)
		return
	}
	report, err := engine.Up(ctx, migrate.RunOptions{Actor: "alice", Canary: 5, Waves: []int{10, 50, 100}})
	if errors.Is(err, migrate.ErrHalted) {
		for _, f := range report.Failures {
			log.Printf("%s: %s", f.Key(), f.LastError)
		}
	}
}
