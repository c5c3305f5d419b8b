-- A DNS authorization granted by a tenant's name template (`attested_names`) names the
-- permanent-identifier authorization of the same order whose device attestation decides it.
-- It carries no challenge of its own, becomes valid or invalid in the same transaction as
-- that authorization, and is never reused (see ra::order and docs/onboarding.md). No foreign
-- key: `fleetca migrate` copies rows in any order.
ALTER TABLE authzs ADD COLUMN attested_by TEXT;
CREATE INDEX authzs_attested_by ON authzs(attested_by);
