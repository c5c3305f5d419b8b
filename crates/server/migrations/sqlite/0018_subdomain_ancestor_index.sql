-- newOrder looks for the account's valid authorizations that allow subdomains (RFC 9444 §4.2)
-- on every order with a DNS name. Through `authzs_reuse` that read visited every authorization
-- the account ever had, so its cost grew with the account's history; only authorizations
-- made with `subdomainAuthAllowed` are in this index, and an account without any finds its
-- range empty.
CREATE INDEX authzs_subdomain_ancestors ON authzs(account_id, tenant, expires)
    WHERE subdomain_auth_allowed = 1;
