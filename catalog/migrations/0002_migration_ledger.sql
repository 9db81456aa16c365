-- Fleet migrations (package migrate): the rollout ledger and tenant leases.
--
-- The authoritative record of what a target has applied lives in the target
-- itself (table tenantry_migration in the target schema, written in the same
-- transaction as each transactional step). These tables mirror it for the
-- fleet: plans, progress, the admin API, and the version application code
-- reads for a tenant without connecting to its database.

-- One row per rollout (migrate up). At most one is unfinished at a time; an
-- unfinished run is continued by migrate resume.
CREATE TABLE tenantry.migration_run (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,64}$'),
    head        integer NOT NULL CHECK (head >= 0),
    state       text NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'halted', 'done', 'aborted')),
    actor       text NOT NULL CHECK (actor <> ''),
    options     jsonb NOT NULL DEFAULT '{}',
    waves       integer NOT NULL DEFAULT 0,
    wave        integer NOT NULL DEFAULT 0,
    total       integer NOT NULL DEFAULT 0,
    halt_reason text NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- At most one unfinished run.
CREATE UNIQUE INDEX migration_run_one_unfinished ON tenantry.migration_run ((true))
    WHERE state IN ('running', 'halted');

-- One row per target: a distinct (cluster, database, schema) holding tenant
-- tables (a shared database, a shard, a tenant schema, a tenant database) or
-- a provisioning template.
CREATE TABLE tenantry.migration_target (
    cluster      text NOT NULL REFERENCES tenantry.cluster (name) ON DELETE CASCADE,
    database     text NOT NULL CHECK (database <> ''),
    schema       text NOT NULL CHECK (schema <> ''),
    kind         text NOT NULL CHECK (kind IN ('shared', 'sharded', 'schema', 'database', 'template')),
    -- version is the newest version the target has applied, as last seen.
    version      integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'failed', 'blocked', 'skipped')),
    -- step is the version being applied (running) or that failed (failed).
    step         integer,
    run_id       text REFERENCES tenantry.migration_run (id) ON DELETE SET NULL,
    wave         integer,
    attempts     integer NOT NULL DEFAULT 0,
    lock_retries integer NOT NULL DEFAULT 0,
    last_error   text NOT NULL DEFAULT '',
    started_at   timestamptz,
    finished_at  timestamptz,
    duration_ms  bigint,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, database, schema)
);

CREATE INDEX migration_target_run_idx ON tenantry.migration_target (run_id, state);

-- A lease on a tenant for a long operation on its data (a fleet migration of
-- its target, a move between clusters or models). A lease is held while
-- expires_at is in the future; its owner renews it. Whoever wants a tenant
-- takes the lease or waits; a migration and a move never hold the same tenant.
CREATE TABLE tenantry.tenant_lease (
    tenant_id   uuid PRIMARY KEY REFERENCES tenantry.tenant (id) ON DELETE CASCADE,
    owner       text NOT NULL CHECK (owner <> ''),
    purpose     text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9-]{0,31}$'),
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX tenant_lease_owner_idx ON tenantry.tenant_lease (owner);

-- Resolving a placement to its ledger row, for a tenant's schema version.
CREATE INDEX tenant_placement_target_idx
    ON tenantry.tenant (placement_cluster, placement_database, placement_schema);
