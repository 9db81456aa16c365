package provision

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SecureShared puts every tenant table of schema, a shared or shard location,
// under forced row-level security with the tenant policy, and grants the
// runtime and reporting roles their rights, in tx. Tables without a
// tenant_id column (the migration ledger) hold no tenant rows and are left
// alone; the security check refuses any that the runtime role can write.
//
// Run it after every schema change in a shared or shard location: a
// migration that adds a table must not leave it readable across tenants.
// It is idempotent.
func SecureShared(ctx context.Context, tx pgx.Tx, schema string) error {
	if err := secureShared(ctx, tx, schema); err != nil {
		return fmt.Errorf("secure shared schema %s: %w", schema, err)
	}
	return nil
}
