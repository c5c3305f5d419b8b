-- Issuing-CA rollover (`fleetca tenant rollover`): a tenant has one active issuing CA and any
-- number of retired ones that keep serving CRLs, OCSP and ARI for what they issued. Each
-- certificate records the id of the CA that signed it; NULL is the tenant's first CA, whose
-- id is the tenant name (every certificate issued before this column existed).
ALTER TABLE certificates ADD COLUMN issuer TEXT;
