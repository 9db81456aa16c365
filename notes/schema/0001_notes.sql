-- The notes table of the reference application. It follows Tenantry's table
-- contract, so it serves every storage model unchanged: tenant_id defaults to
-- the transaction's tenant and leads the primary key.
CREATE TABLE notes (
    tenant_id  uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body       text NOT NULL DEFAULT '' CHECK (octet_length(body) <= 10000),
    version    bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
