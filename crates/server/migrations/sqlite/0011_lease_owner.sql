-- Who holds a validation lease: a token fresh for each claim (challenge POST or takeover). A
-- validation contacts its target only after renewing the lease under its own token, so one
-- that was taken over (or decided) while it waited for a slot is never run a second time.
ALTER TABLE challenges ADD COLUMN lease_owner TEXT;
