-- A validation in progress holds a lease; when a node dies mid-validation the lease runs out and
-- any node takes the challenge over, so no authorization stays `processing` forever.
ALTER TABLE challenges ADD COLUMN lease_until INTEGER;
