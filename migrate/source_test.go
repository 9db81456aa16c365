package migrate_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tenantry/tenantry/migrate"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	src := loadSource(t, nil)
	if src.Head() != 4 || len(src.Steps()) != 4 {
		t.Fatalf("head %d, %d steps", src.Head(), len(src.Steps()))
	}
	modes := []migrate.Mode{migrate.ModeTx, migrate.ModeTx, migrate.ModeNoTx, migrate.ModeBatch}
	for i, st := range src.Steps() {
		if st.Mode != modes[i] || st.Version != i+1 || len(st.Checksum) != 64 {
			t.Errorf("step %d: %+v", i+1, st)
		}
	}
	idx := mustStep(t, src, 3)
	if len(idx.Statements) != 2 || !idx.Statements[0].OutsideTx || idx.Statements[0].Index != "notes_status_idx" || idx.Statements[1].OutsideTx || idx.Statements[0].Line != 2 {
		t.Errorf("step 3 statements: %+v", idx.Statements)
	}
	if len(src.Until(2).Steps()) != 2 || src.Until(2).Head() != 2 {
		t.Error("Until(2)")
	}
	if _, ok := src.Step(5); ok {
		t.Error("Step(5) exists")
	}
	headers, err := migrate.Load(fstest.MapFS{"0001_x.sql": {Data: []byte(`-- a comment first
-- migrate:mode batch
-- migrate:lock-timeout 2s
-- migrate:statement-timeout 1m
-- migrate:batch-pause 20ms
-- migrate:allow batch-shape the table has one row per tenant

UPDATE t SET x = 1 WHERE x IS NULL`)}})
	if err != nil {
		t.Fatal(err)
	}
	st := headers.Steps()[0]
	if st.LockTimeout != 2*time.Second || st.StatementTimeout != time.Minute || st.BatchPause != 20*time.Millisecond ||
		st.Allow["batch-shape"] != "the table has one row per tenant" {
		t.Errorf("headers: %+v", st)
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		files map[string]string
		want  string
	}{
		"no mode":               {map[string]string{"0001_a.sql": "SELECT 1"}, "must declare -- migrate:mode"},
		"bad mode":              {map[string]string{"0001_a.sql": "-- migrate:mode maybe\nSELECT 1"}, "mode must be"},
		"two modes":             {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:mode no-tx\nSELECT 1"}, "twice"},
		"unknown directive":     {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:yolo\nSELECT 1"}, "unknown directive"},
		"directive after stmt":  {map[string]string{"0001_a.sql": "-- migrate:mode tx\nSELECT 1;\n-- migrate:allow drop-column later\n"}, "must be in the header"},
		"allow without reason":  {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:allow drop-column\nSELECT 1"}, "stated reason"},
		"allow one word":        {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:allow drop-column because\nSELECT 1"}, "stated reason"},
		"allow unknown rule":    {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:allow everything it is fine\nSELECT 1"}, "unknown lint rule"},
		"allow unallowable":     {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:allow needs-no-tx it is fine really\nSELECT 1"}, "cannot be allowed"},
		"bad duration":          {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:lock-timeout soon\nSELECT 1"}, "positive duration"},
		"negative duration":     {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:lock-timeout -1s\nSELECT 1"}, "positive duration"},
		"pause outside batch":   {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- migrate:batch-pause 1s\nSELECT 1"}, "batch steps only"},
		"batch of two":          {map[string]string{"0001_a.sql": "-- migrate:mode batch\nSELECT 1; SELECT 2"}, "exactly one statement"},
		"empty":                 {map[string]string{"0001_a.sql": "-- migrate:mode tx\n-- nothing\n"}, "no statements"},
		"bad name":              {map[string]string{"1a_x.sql": "-- migrate:mode tx\nSELECT 1"}, "NNNN_description"},
		"zero version":          {map[string]string{"0000_x.sql": "-- migrate:mode tx\nSELECT 1"}, "NNNN_description"},
		"negative version":      {map[string]string{"-001_x.sql": "-- migrate:mode tx\nSELECT 1"}, "NNNN_description"},
		"no description":        {map[string]string{"0001.sql": "-- migrate:mode tx\nSELECT 1"}, "NNNN_description"},
		"duplicate version":     {map[string]string{"0001_a.sql": "-- migrate:mode tx\nSELECT 1", "001_b.sql": "-- migrate:mode tx\nSELECT 1"}, "version 1 is also"},
		"directive in a string": {map[string]string{"0001_a.sql": "SELECT '\n-- migrate:mode tx\n'"}, "must be in the header"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{}
			for n, body := range tt.files {
				fsys[n] = &fstest.MapFile{Data: []byte(body)}
			}
			_, err := migrate.Load(fsys)
			var se *migrate.SourceError
			if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want a SourceError with %q", err, tt.want)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	src := loadSource(t, nil)
	empty, err := migrate.Load(fstest.MapFS{})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*migrate.Config{
		"no source":       {},
		"empty source":    {Source: empty},
		"bad owner":       {Source: src, OwnerRole: strings.Repeat("x", 64)},
		"bad template":    {Source: src, Templates: []migrate.TemplateRef{{Database: "", Schema: "app"}}},
		"negative":        {Source: src, LockTimeout: -time.Second},
		"short lease":     {Source: src, LeaseTTL: time.Second},
		"baseline beyond": {Source: src, Baseline: 9},
	} {
		if _, err := migrate.New(f.store, cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := migrate.New(nil, &migrate.Config{Source: src}); err == nil {
		t.Error("New accepted a nil store")
	}
}
