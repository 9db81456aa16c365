package router

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/tenantry/tenantry/tenant"
)

// Defaults of the Config fields.
const (
	DefaultRuntimeRole     = "tenantry_app"
	DefaultRollbackTimeout = 5 * time.Second
)

// TenantSetting is the transaction-local setting that carries the tenant's ID
// to row-level security policies, which read it as
// NULLIF(current_setting('tenantry.tenant_id', true), ”)::uuid.
const TenantSetting = "tenantry.tenant_id"

// Config configures a Router. The zero value selects every default.
type Config struct {
	// RuntimeRole is the login role of every connection: NOBYPASSRLS,
	// owning no tables, a member of every per-tenant role. Default
	// "tenantry_app".
	RuntimeRole string

	// TenantRole names the per-tenant role a transaction of a schema or
	// database tenant switches to (transaction-locally). Shared and sharded
	// tenants run as RuntimeRole under row-level security. Default
	// DefaultTenantRole.
	TenantRole func(*tenant.Tenant) string

	// RollbackTimeout bounds a rollback after an error, a panic or a
	// cancelled context; past it the connection is closed instead. Default
	// 5s.
	RollbackTimeout time.Duration

	// Logger receives the Router's records; every record carries the
	// tenant. Default: discard.
	Logger *slog.Logger
}

// DefaultTenantRole is "tenantry_t_" followed by the tenant's slug with
// hyphens replaced by underscores: tenant "acme-eu" runs as
// "tenantry_t_acme_eu".
func DefaultTenantRole(t *tenant.Tenant) string {
	return "tenantry_t_" + strings.ReplaceAll(t.Slug, "-", "_")
}

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.RuntimeRole == "" {
		out.RuntimeRole = DefaultRuntimeRole
	}
	if out.TenantRole == nil {
		out.TenantRole = DefaultTenantRole
	}
	if out.RollbackTimeout == 0 {
		out.RollbackTimeout = DefaultRollbackTimeout
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &out
}

func (c *Config) validate() error {
	if c.RollbackTimeout < 0 {
		return errors.New("router config: RollbackTimeout must not be negative")
	}
	return nil
}
