-- Finalize runs in three steps (RA: claim, sign outside any transaction, store): a claimed order
-- is 'processing' under an unguessable token until claim_until. Only the holder can store the
-- certificate; a claim whose node died between claim and store is released by the sweeper.
ALTER TABLE orders ADD COLUMN claim_token TEXT;
ALTER TABLE orders ADD COLUMN claim_until BIGINT;
CREATE INDEX orders_processing ON orders(claim_until) WHERE status = 'processing';
