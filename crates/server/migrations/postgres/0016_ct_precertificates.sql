-- Certificate Transparency (RFC 6962): a precertificate is stored, in the row its final
-- certificate will take, before the logs are asked for SCTs. It is a binding commitment to
-- issue (BR §7.1.2.9): its serial is revocable, on CRLs and answered by OCSP from then on.
-- While der = precert_der the final certificate is still to come (the order is processing).
ALTER TABLE certificates ADD COLUMN precert_der BYTEA;
CREATE INDEX certificates_by_order ON certificates(order_id);
