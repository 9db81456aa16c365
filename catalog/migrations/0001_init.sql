-- Tenantry catalog: the control plane. Every table lives in schema tenantry.

CREATE TABLE tenantry.cluster (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,47}$'),
    conn_string text NOT NULL CHECK (conn_string <> ''),
    region      text NOT NULL DEFAULT '',
    role        text NOT NULL DEFAULT 'primary' CHECK (role IN ('primary', 'shard', 'replica')),
    max_conns   integer NOT NULL DEFAULT 50 CHECK (max_conns > 0),
    max_tenants integer NOT NULL DEFAULT 0 CHECK (max_tenants >= 0),
    labels      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     bigint NOT NULL DEFAULT 1
);

CREATE TABLE tenantry.tenant (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug               text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{0,47}$'),
    display_name       text NOT NULL DEFAULT '',
    state              text NOT NULL DEFAULT 'active'
                       CHECK (state IN ('active', 'suspended', 'read-only', 'deleting')),
    tier               text NOT NULL DEFAULT 'free',
    region             text NOT NULL DEFAULT '',
    placement_model    text NOT NULL DEFAULT 'shared'
                       CHECK (placement_model IN ('shared', 'schema', 'database', 'sharded')),
    placement_cluster  text REFERENCES tenantry.cluster (name),
    placement_database text NOT NULL DEFAULT '',
    placement_schema   text NOT NULL DEFAULT '',
    labels             jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            bigint NOT NULL DEFAULT 1
);

CREATE INDEX tenant_placement_cluster_idx ON tenantry.tenant (placement_cluster);

CREATE TABLE tenantry.domain (
    domain     text PRIMARY KEY CHECK (domain = lower(domain) AND length(domain) <= 253),
    tenant_id  uuid NOT NULL REFERENCES tenantry.tenant (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX domain_tenant_id_idx ON tenantry.domain (tenant_id);

-- The audit log is append-only: updates, deletes and truncation raise. It has
-- no foreign key to tenant so that it outlives the tenants it describes.
CREATE TABLE tenantry.audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text NOT NULL CHECK (actor <> ''),
    action    text NOT NULL,
    tenant_id uuid,
    target    text NOT NULL DEFAULT '',
    reason    text NOT NULL DEFAULT '',
    before    jsonb,
    after     jsonb
);

CREATE INDEX audit_log_tenant_id_idx ON tenantry.audit_log (tenant_id, id);

CREATE FUNCTION tenantry.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tenantry.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON tenantry.audit_log
    FOR EACH ROW EXECUTE FUNCTION tenantry.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON tenantry.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.audit_log_append_only();

-- Change notifications for the per-process caches. Payload "tenant:<id>" or
-- "cluster:<name>"; PostgreSQL delivers them at commit and merges duplicates
-- within a transaction.
CREATE FUNCTION tenantry.notify_tenant() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tenantry_catalog', 'tenant:' || OLD.id::text);
    ELSE
        PERFORM pg_notify('tenantry_catalog', 'tenant:' || NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION tenantry.notify_domain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM pg_notify('tenantry_catalog', 'tenant:' || OLD.tenant_id::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('tenantry_catalog', 'tenant:' || NEW.tenant_id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION tenantry.notify_cluster() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tenantry_catalog', 'cluster:' || OLD.name);
    ELSE
        PERFORM pg_notify('tenantry_catalog', 'cluster:' || NEW.name);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenant_notify AFTER INSERT OR UPDATE OR DELETE ON tenantry.tenant
    FOR EACH ROW EXECUTE FUNCTION tenantry.notify_tenant();
CREATE TRIGGER domain_notify AFTER INSERT OR UPDATE OR DELETE ON tenantry.domain
    FOR EACH ROW EXECUTE FUNCTION tenantry.notify_domain();
CREATE TRIGGER cluster_notify AFTER INSERT OR UPDATE OR DELETE ON tenantry.cluster
    FOR EACH ROW EXECUTE FUNCTION tenantry.notify_cluster();
