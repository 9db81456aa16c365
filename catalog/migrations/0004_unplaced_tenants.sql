-- A tenant created without a storage model is "unplaced" (placement_model
-- ''): the data plane's placement policy chooses its model when it is
-- provisioned, so an explicit "shared" can be told from no choice at all.
ALTER TABLE tenantry.tenant DROP CONSTRAINT tenant_placement_model_check;
ALTER TABLE tenantry.tenant ALTER COLUMN placement_model SET DEFAULT '';
ALTER TABLE tenantry.tenant ADD CONSTRAINT tenant_placement_model_check
    CHECK (placement_model IN ('', 'shared', 'schema', 'database', 'sharded'));
ALTER TABLE tenantry.tenant ADD CONSTRAINT tenant_unplaced_is_empty_check
    CHECK (placement_model <> '' OR (placement_cluster IS NULL AND placement_database = '' AND placement_schema = ''));
