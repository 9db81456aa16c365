-- Object storage (package blob/quota): per-tenant limits, usage, and the
-- reservations of uploads in flight. Quotas are enforced against
-- usage + unexpired reservations, under a row lock on the tenant's usage row.

-- Limits that override the tier defaults configured in blob/quota. NULL means
-- "the tier default"; 0 means "no limit".
CREATE TABLE tenantry.blob_quota (
    tenant_id       uuid PRIMARY KEY REFERENCES tenantry.tenant (id) ON DELETE CASCADE,
    max_bytes       bigint CHECK (max_bytes >= 0),
    max_objects     bigint CHECK (max_objects >= 0),
    max_object_size bigint CHECK (max_object_size >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What a tenant stores: committed after each successful write or delete, and
-- recomputed from the store by Reconcile.
CREATE TABLE tenantry.blob_usage (
    tenant_id  uuid PRIMARY KEY REFERENCES tenantry.tenant (id) ON DELETE CASCADE,
    bytes      bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    objects    bigint NOT NULL DEFAULT 0 CHECK (objects >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Space held by uploads in flight. A reservation of a process that died
-- expires and stops counting; it is deleted by the next reservation of the
-- same tenant.
CREATE TABLE tenantry.blob_reservation (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenantry.tenant (id) ON DELETE CASCADE,
    bytes      bigint NOT NULL CHECK (bytes >= 0),
    objects    bigint NOT NULL CHECK (objects >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX blob_reservation_tenant_idx ON tenantry.blob_reservation (tenant_id, expires_at);
