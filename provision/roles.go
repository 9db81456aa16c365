package provision

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
)

// Attributes of the roles, enforced (ALTER ROLE) every time a process first
// uses a cluster, so that a role changed by hand (say, given BYPASSRLS) is
// put back.
var roleAttributes = []struct{ name, attrs string }{
	{OwnerRole, "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"},
	{AppRole, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
	{ReportingRole, "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"},
}

const tenantRoleAttributes = "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"

// ensureRoles creates the cluster-wide roles on cl if missing, once per
// process and cluster, on conn (a maintenance connection).
func (p *Provisioner) ensureRoles(ctx context.Context, cl *catalog.Cluster, conn *pgxpool.Conn) error {
	done, mark := p.once(cl, "roles")
	if done {
		return nil
	}
	unlock, err := p.lock(ctx, conn, "tenantry:provision:roles", false)
	if err != nil {
		return err
	}
	defer unlock()
	for _, r := range roleAttributes {
		if err := ensureRole(ctx, conn, r.name, r.attrs); err != nil {
			return err
		}
	}
	// The runtime role must hold nothing but its own grants: membership in
	// the owner or reporting role would let it step around RLS.
	for _, r := range []string{OwnerRole, ReportingRole} {
		var member bool
		if err := conn.QueryRow(ctx, `SELECT pg_has_role($1, $2, 'MEMBER')`, AppRole, r).Scan(&member); err != nil {
			return fmt.Errorf("check role %s: %w", AppRole, err)
		}
		if member {
			return fmt.Errorf("role %s is a member of %s: revoke it, the runtime role must not own or read everything", AppRole, r)
		}
	}
	mark()
	return nil
}

// ensureRole creates role name with attrs if missing, and enforces attrs.
func ensureRole(ctx context.Context, conn *pgxpool.Conn, name, attrs string) error {
	q, err := sqlident.Quote(name)
	if err != nil {
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", name, err)
	}
	verb := "ALTER"
	if !exists {
		verb = "CREATE"
	}
	if _, err := conn.Exec(ctx, verb+" ROLE "+q+" "+attrs); err != nil {
		return fmt.Errorf("%s role %s: %w", verb, name, err)
	}
	return nil
}

// ensureTenantRole creates the per-tenant role name and makes AppRole a
// member of it. The caller holds the tenant's lock.
func ensureTenantRole(ctx context.Context, conn *pgxpool.Conn, name string) error {
	if err := ensureRole(ctx, conn, name, tenantRoleAttributes); err != nil {
		return err
	}
	var member bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_auth_members m
JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE r.rolname = $1 AND u.rolname = $2)`, name, AppRole).Scan(&member); err != nil {
		return fmt.Errorf("look up membership in %s: %w", name, err)
	}
	if !member {
		if _, err := conn.Exec(ctx, "GRANT "+sqlident.MustQuote(name)+" TO "+sqlident.MustQuote(AppRole)); err != nil {
			return fmt.Errorf("grant %s to %s: %w", name, AppRole, err)
		}
	}
	return nil
}

// dropTenantRole drops the per-tenant role name if it exists.
func dropTenantRole(ctx context.Context, conn *pgxpool.Conn, name string) error {
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+sqlident.MustQuote(name)); err != nil {
		return fmt.Errorf("drop role %s: %w", name, err)
	}
	return nil
}

// ensureDatabase creates database name on cl (owned by OwnerRole, from
// template0) if missing, and limits CONNECT to the runtime and reporting
// roles. conn is a maintenance connection; the caller holds a lock on name.
func ensureDatabase(ctx context.Context, conn *pgxpool.Conn, name string) (created bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	q := sqlident.MustQuote(name)
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+q+" OWNER "+sqlident.MustQuote(OwnerRole)+" TEMPLATE template0"); err != nil {
			return false, fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return !exists, restrictDatabase(ctx, conn, name)
}

// restrictDatabase revokes the default PUBLIC rights on a database (CONNECT
// and TEMPORARY: a temporary table would shadow an application table for the
// next tenant on a pooled connection) and grants CONNECT to the runtime and
// reporting roles only.
func restrictDatabase(ctx context.Context, conn *pgxpool.Conn, name string) error {
	q := sqlident.MustQuote(name)
	sql := "REVOKE ALL ON DATABASE " + q + " FROM PUBLIC; GRANT CONNECT ON DATABASE " + q + " TO " +
		sqlident.MustQuote(AppRole) + ", " + sqlident.MustQuote(ReportingRole)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("restrict database %s: %w", name, err)
	}
	return nil
}
