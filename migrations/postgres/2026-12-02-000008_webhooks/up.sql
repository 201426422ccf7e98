-- Webhooks (contract §9): endpoints, and the outbox of deliveries. A delivery is written in the
-- same transaction as the event or publication it announces (one row per endpoint subscribed to
-- its type), so none is lost and none is sent for anything that did not commit.
CREATE TABLE webhook_endpoints (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    -- The subscribed types, comma-separated with a comma at each end (`,accepted,erased,`), so
    -- that the outbox's insert finds the endpoints with one LIKE.
    events TEXT NOT NULL,
    -- `whsec_` and the base64 of the signing key (Standard Webhooks).
    secret TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    -- Removed endpoints stay for their delivery log; nothing new is written for them.
    removed_at TIMESTAMP
);

-- One row per (endpoint, event or version). There is no foreign key to the endpoint: every
-- event's transaction would lock the endpoint's row to check it. What a delivery sends is read
-- when it is sent, from the event or version it names; only an erasure's delivery keeps the
-- subject id (`subject`), which the erased event no longer holds, until it is delivered.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    event_id BIGINT,
    version_id BIGINT,
    subject TEXT,
    created_at TIMESTAMP NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Retries go on for the retry period counted from here (the first write, or a manual retry).
    retry_since TIMESTAMP NOT NULL,
    -- When a pending delivery is next due. A server that takes one moves this past its timeout
    -- and writes its `lease`: no other server takes it meanwhile, and if the server dies, the
    -- delivery is due again once that time has passed.
    next_attempt_at TIMESTAMP,
    lease TEXT,
    last_attempt_at TIMESTAMP,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP
);
-- Each server takes the due deliveries of one endpoint at a time, so that a slow endpoint's
-- backlog cannot hold up the others'.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
-- Failed deliveries are counted at every metrics read and listed per endpoint; delivered rows,
-- which are never pruned, are not read for either.
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (endpoint_id) WHERE state = 'failed';
