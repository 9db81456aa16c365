package provision

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/tenant"
)

// maintenance acquires a connection to cl's maintenance database and makes
// sure the cluster-wide roles exist.
func (p *Provisioner) maintenance(ctx context.Context, cl *catalog.Cluster) (*pgxpool.Conn, error) {
	pool, err := p.pool(ctx, cl, "")
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	if err := p.ensureRoles(ctx, cl, conn); err != nil {
		conn.Release()
		return nil, fmt.Errorf("cluster %s: roles: %w", cl.Name, err)
	}
	return conn, nil
}

// lockTenant takes the tenant's lock on the maintenance connection. It is
// keyed by slug, the source of every name the tenant's storage has.
func (p *Provisioner) lockTenant(ctx context.Context, conn *pgxpool.Conn, t *tenant.Tenant) (func(), error) {
	return p.lock(ctx, conn, "tenantry:provision:tenant:"+t.Slug, false)
}

// ensureSharedDatabase creates the database of the shared or sharded model
// on cl with the application tables under row-level security, on first use.
// A database whose tables were built from other DDL is left alone (its
// migrations are not the provisioner's business) and logged.
func (p *Provisioner) ensureSharedDatabase(ctx context.Context, cl *catalog.Cluster, conn *pgxpool.Conn, database string) error {
	done, mark := p.once(cl, "db:"+database)
	if done {
		return nil
	}
	unlock, err := p.lock(ctx, conn, "tenantry:provision:db:"+database, false)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := ensureDatabase(ctx, conn, database); err != nil {
		return err
	}
	pool, err := p.pool(ctx, cl, database)
	if err != nil {
		return err
	}
	schema := p.config.AppSchema
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		comment, exists, err := schemaComment(ctx, tx, schema)
		if err != nil {
			return err
		}
		if !exists {
			if err := p.createSchema(ctx, tx, schema); err != nil {
				return err
			}
		} else if v := markerVersion(comment); v != p.version {
			p.logger.WarnContext(ctx, "shared tables were built from other DDL; leaving them to migrations",
				"cluster", cl.Name, "database", database, "built", v, "ddl", p.version)
		}
		return secureShared(ctx, tx, schema)
	})
	if err != nil {
		return fmt.Errorf("database %s: %w", database, err)
	}
	mark()
	return nil
}

// provisionShared makes sure the shared (or shard) database of t's cluster
// is ready. A tenant of these models has no storage of its own.
func (p *Provisioner) provisionShared(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) error {
	if want := ClusterRole(t.Placement.Model); cl.Role != want {
		return fmt.Errorf("%w: cluster %s has role %s, model %s needs %s", ErrPlacementMismatch, cl.Name, cl.Role, t.Placement.Model, want)
	}
	conn, err := p.maintenance(ctx, cl)
	if err != nil {
		return err
	}
	defer conn.Release()
	return p.ensureSharedDatabase(ctx, cl, conn, t.Placement.Database)
}

// deprovisionShared deletes t's rows from every table of the shared (or
// shard) database, children before parents, in one transaction.
func (p *Provisioner) deprovisionShared(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) error {
	conn, err := p.maintenance(ctx, cl)
	if err != nil {
		return err
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, t.Placement.Database).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return nil
	}
	pool, err := p.pool(ctx, cl, t.Placement.Database)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		order, err := deleteOrder(ctx, tx, t.Placement.Schema)
		if err != nil {
			return err
		}
		for _, name := range order {
			qt, err := sqlident.Qualified(t.Placement.Schema, name)
			if err != nil {
				return err
			}
			// As the cluster's administrative role this bypasses row-level
			// security; the explicit predicate is the whole scope.
			if _, err := tx.Exec(ctx, "DELETE FROM "+qt+" WHERE tenant_id = $1", t.ID); err != nil {
				return fmt.Errorf("delete rows of %s: %w", name, err)
			}
		}
		return nil
	})
}

// deleteOrder returns the tables of schema ordered so that a table that
// references another (a foreign key within the schema) comes first.
func deleteOrder(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	names, err := tenantTables(ctx, tx, schema)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT c.relname, r.relname FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE k.contype = 'f' AND n.nspname = $1 AND rn.nspname = $1 AND c.oid <> r.oid`, schema)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys of %s: %w", schema, err)
	}
	refs := map[string][]string{} // referenced table -> referencing tables
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			return nil, err
		}
		refs[parent] = append(refs[parent], child)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("foreign keys of schema %s form a cycle through %s", schema, n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, child := range refs[n] {
			if err := visit(child); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ownStorage starts the provisioning of a tenant with storage of its own
// (schema or database model): it checks the cluster can hold it, names the
// tenant's role, and returns a maintenance connection holding the tenant's
// lock. done releases both.
func (p *Provisioner) ownStorage(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) (role string, conn *pgxpool.Conn, done func(), err error) {
	if cl.Role != catalog.RolePrimary {
		return "", nil, nil, fmt.Errorf("%w: cluster %s has role %s, the %s model needs primary", ErrPlacementMismatch, cl.Name, cl.Role, t.Placement.Model)
	}
	if role, err = TenantRole(t.Slug); err != nil {
		return "", nil, nil, err
	}
	if conn, err = p.maintenance(ctx, cl); err != nil {
		return "", nil, nil, err
	}
	unlock, err := p.lockTenant(ctx, conn, t)
	if err != nil {
		conn.Release()
		return "", nil, nil, err
	}
	return role, conn, func() { unlock(); conn.Release() }, nil
}

// provisionSchema creates t's role and schema in the schemas database of its
// cluster, in one transaction, if missing.
func (p *Provisioner) provisionSchema(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) (bool, error) {
	role, conn, done, err := p.ownStorage(ctx, cl, t)
	if err != nil {
		return false, err
	}
	defer done()
	if err := p.ensureSchemasDatabase(ctx, cl, conn); err != nil {
		return false, err
	}
	if err := ensureTenantRole(ctx, conn, role); err != nil {
		return false, err
	}
	pool, err := p.pool(ctx, cl, t.Placement.Database)
	if err != nil {
		return false, err
	}
	created := false
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		comment, exists, err := schemaComment(ctx, tx, t.Placement.Schema)
		if err != nil {
			return err
		}
		if !exists {
			if err := p.createSchema(ctx, tx, t.Placement.Schema); err != nil {
				return err
			}
			created = true
		} else if !strings.HasPrefix(comment, "tenantry:ddl:") {
			return fmt.Errorf("%w: schema %s; refusing to take it over", ErrForeignStorage, t.Placement.Schema)
		}
		return grant(ctx, tx, t.Placement.Schema, role)
	})
	return created, err
}

// ensureSchemasDatabase creates the database of the schema model on first use.
func (p *Provisioner) ensureSchemasDatabase(ctx context.Context, cl *catalog.Cluster, conn *pgxpool.Conn) error {
	database := p.config.SchemasDatabase
	done, mark := p.once(cl, "db:"+database)
	if done {
		return nil
	}
	unlock, err := p.lock(ctx, conn, "tenantry:provision:db:"+database, false)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := ensureDatabase(ctx, conn, database); err != nil {
		return err
	}
	mark()
	return nil
}

// deprovisionSchema drops t's schema with everything in it, then its role.
func (p *Provisioner) deprovisionSchema(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) error {
	role, err := TenantRole(t.Slug)
	if err != nil {
		return err
	}
	conn, err := p.maintenance(ctx, cl)
	if err != nil {
		return err
	}
	defer conn.Release()
	unlock, err := p.lockTenant(ctx, conn, t)
	if err != nil {
		return err
	}
	defer unlock()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, t.Placement.Database).Scan(&exists); err != nil {
		return err
	}
	if exists {
		pool, err := p.pool(ctx, cl, t.Placement.Database)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			comment, found, err := schemaComment(ctx, tx, t.Placement.Schema)
			if err != nil {
				return err
			}
			if found && !strings.HasPrefix(comment, "tenantry:ddl:") {
				return fmt.Errorf("%w: schema %s; refusing to drop it", ErrForeignStorage, t.Placement.Schema)
			}
			sql := "DROP SCHEMA IF EXISTS " + sqlident.MustQuote(t.Placement.Schema) + " CASCADE"
			var roleExists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, role).Scan(&roleExists); err != nil {
				return err
			}
			if roleExists {
				// Revokes whatever the role was still granted in this database.
				sql += "; DROP OWNED BY " + sqlident.MustQuote(role)
			}
			_, err = tx.Exec(ctx, sql)
			return err
		})
		if err != nil {
			return fmt.Errorf("drop schema %s: %w", t.Placement.Schema, err)
		}
	}
	return dropTenantRole(ctx, conn, role)
}
