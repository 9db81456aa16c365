package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/tenant"
)

// templateLockKey guards the template database of a cluster: tenant
// databases are cloned under a shared lock, the template is (re)built under
// an exclusive one, since CREATE DATABASE ... TEMPLATE fails while anyone is
// connected to the template.
func (p *Provisioner) templateLockKey() string {
	return "tenantry:provision:template:" + p.config.TemplateDatabase
}

// templateVersion returns the DDL version recorded on the template database
// ("" when it has none), and whether it exists.
func (p *Provisioner) templateVersion(ctx context.Context, conn *pgxpool.Conn) (string, bool, error) {
	var comment *string
	err := conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`,
		p.config.TemplateDatabase).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up template %s: %w", p.config.TemplateDatabase, err)
	}
	if comment == nil {
		return "", true, nil
	}
	return markerVersion(*comment), true, nil
}

// lockTemplate takes the template's lock in shared mode once the template is
// at the current DDL version, (re)building it under the exclusive lock first
// if needed. The returned function releases the shared lock.
func (p *Provisioner) lockTemplate(ctx context.Context, cl *catalog.Cluster, conn *pgxpool.Conn) (func(), error) {
	for attempt := 0; attempt < 3; attempt++ {
		unlock, err := p.lock(ctx, conn, p.templateLockKey(), true)
		if err != nil {
			return nil, err
		}
		v, _, err := p.templateVersion(ctx, conn)
		if err != nil {
			unlock()
			return nil, err
		}
		if v == p.version {
			return unlock, nil
		}
		unlock()
		if err := p.buildTemplate(ctx, cl, conn); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("template %s keeps changing under us", p.config.TemplateDatabase)
}

// buildTemplate (re)builds the template database from the DDL under the
// exclusive template lock: a database owned by OwnerRole whose AppSchema
// holds the application tables, marked with the DDL version, and closed to
// connections so that cloning it never fails on a stray session.
func (p *Provisioner) buildTemplate(ctx context.Context, cl *catalog.Cluster, conn *pgxpool.Conn) error {
	unlock, err := p.lock(ctx, conn, p.templateLockKey(), false)
	if err != nil {
		return err
	}
	defer unlock()
	name := p.config.TemplateDatabase
	q := sqlident.MustQuote(name)
	v, exists, err := p.templateVersion(ctx, conn)
	if err != nil {
		return err
	}
	if v == p.version {
		return nil // built by someone else while we waited
	}
	began := time.Now()
	if exists {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+q+" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true"); err != nil {
			return fmt.Errorf("unseal outdated template %s: %w", name, err)
		}
		// DROP DATABASE must be a statement of its own (no transaction block).
		if _, err := conn.Exec(ctx, "DROP DATABASE "+q+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop outdated template %s: %w", name, err)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+q+" OWNER "+sqlident.MustQuote(OwnerRole)+" TEMPLATE template0"); err != nil {
		return fmt.Errorf("create template %s: %w", name, err)
	}
	if err := restrictDatabase(ctx, conn, name); err != nil {
		return err
	}
	tc, err := connect(ctx, cl, name)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, tc, func(tx pgx.Tx) error { return p.createSchema(ctx, tx, p.config.AppSchema) })
	_ = tc.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("template %s: %w", name, err)
	}
	m, _ := sqlident.Literal(p.marker())
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+q+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false; COMMENT ON DATABASE "+q+" IS "+m); err != nil {
		return fmt.Errorf("seal template %s: %w", name, err)
	}
	p.logger.InfoContext(ctx, "template database built", "cluster", cl.Name, "database", name, "ddl", p.version, "elapsed", time.Since(began))
	return nil
}

// provisionDatabase creates t's role and database (cloned from the template)
// and grants the role the database's tables, if missing.
func (p *Provisioner) provisionDatabase(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) (bool, error) {
	role, conn, done, err := p.ownStorage(ctx, cl, t)
	if err != nil {
		return false, err
	}
	defer done()
	if err := ensureTenantRole(ctx, conn, role); err != nil {
		return false, err
	}
	name := t.Placement.Database
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return false, err
	}
	if !exists {
		unlockTemplate, err := p.lockTemplate(ctx, cl, conn)
		if err != nil {
			return false, err
		}
		began := time.Now()
		sql := "CREATE DATABASE " + sqlident.MustQuote(name) + " OWNER " + sqlident.MustQuote(OwnerRole) +
			" TEMPLATE " + sqlident.MustQuote(p.config.TemplateDatabase)
		if p.config.CloneStrategy != "" {
			sql += " STRATEGY " + p.config.CloneStrategy // one of two keywords, checked by validate
		}
		_, err = conn.Exec(ctx, sql)
		unlockTemplate()
		if err != nil {
			return false, fmt.Errorf("create database %s: %w", name, err)
		}
		p.logger.DebugContext(ctx, "tenant database cloned", "tenant", t.Slug, "database", name, "elapsed", time.Since(began))
	}
	// Grants name the per-tenant role, so they cannot live in the template.
	dc, err := connect(ctx, cl, name)
	if err != nil {
		return false, err
	}
	defer dc.Close(context.WithoutCancel(ctx))
	// A database that was not cloned from the template is someone else's:
	// neither its privileges nor its contents are touched.
	if err := checkMarked(ctx, dc, name, t.Placement.Schema, "take it over"); err != nil {
		return false, err
	}
	if err := restrictDatabase(ctx, conn, name); err != nil {
		return false, err
	}
	err = pgx.BeginFunc(ctx, dc, func(tx pgx.Tx) error {
		return grant(ctx, tx, t.Placement.Schema, role)
	})
	if err != nil {
		return false, fmt.Errorf("database %s: %w", name, err)
	}
	return !exists, nil
}

// deprovisionDatabase drops t's database, closing its sessions, then its role.
func (p *Provisioner) deprovisionDatabase(ctx context.Context, cl *catalog.Cluster, t *tenant.Tenant) error {
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
		dc, err := connect(ctx, cl, t.Placement.Database)
		if err != nil {
			return err
		}
		err = checkMarked(ctx, dc, t.Placement.Database, t.Placement.Schema, "drop it")
		_ = dc.Close(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
	}
	p.dropPool(cl, t.Placement.Database)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+sqlident.MustQuote(t.Placement.Database)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", t.Placement.Database, err)
	}
	return dropTenantRole(ctx, conn, role)
}

// checkMarked returns ErrForeignStorage unless schema in database (on dc)
// carries the marker of a schema the provisioner built: a tenant database
// cloned from the template has it.
func checkMarked(ctx context.Context, dc *pgx.Conn, database, schema, refusing string) error {
	comment, ok, err := schemaComment(ctx, dc, schema)
	if err != nil {
		return fmt.Errorf("database %s: %w", database, err)
	}
	if !ok || markerVersion(comment) == comment {
		return fmt.Errorf("%w: database %s; refusing to %s", ErrForeignStorage, database, refusing)
	}
	return nil
}
