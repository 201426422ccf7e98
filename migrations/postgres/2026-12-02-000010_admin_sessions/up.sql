-- Admin sessions kept on the server, so that signing out ends a session on every server at once
-- (a copied cookie is worth nothing after it), and an idle session ends. The cookie holds a
-- random token; only its SHA-256 is stored.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    key_id BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
