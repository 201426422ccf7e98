-- A smaller ledger (issue 13: bytes per event). Hashes as their 32 bytes rather than 64
-- characters of hex, and events' log leaves not stored twice. What the
-- chain commits to is unchanged: the server reads them back as the same lowercase hex.
ALTER TABLE events
    ALTER COLUMN subject_key TYPE BYTEA USING decode(subject_key, 'hex'),
    ALTER COLUMN subject_hash TYPE BYTEA USING decode(subject_hash, 'hex'),
    ALTER COLUMN ip_hash TYPE BYTEA USING decode(ip_hash, 'hex'),
    ALTER COLUMN user_agent_hash TYPE BYTEA USING decode(user_agent_hash, 'hex'),
    ALTER COLUMN request_hash TYPE BYTEA USING decode(request_hash, 'hex'),
    ALTER COLUMN prev_hash TYPE BYTEA USING decode(prev_hash, 'hex'),
    ALTER COLUMN chain_hash TYPE BYTEA USING decode(chain_hash, 'hex');
ALTER TABLE event_personal
    ALTER COLUMN salt TYPE BYTEA USING decode(salt, 'hex'),
    ALTER COLUMN evidence_salt TYPE BYTEA USING decode(evidence_salt, 'hex');
ALTER TABLE subject_heads
    ALTER COLUMN subject_key TYPE BYTEA USING decode(subject_key, 'hex'),
    ALTER COLUMN chain_hash TYPE BYTEA USING decode(chain_hash, 'hex');
ALTER TABLE subject_documents ALTER COLUMN subject_key TYPE BYTEA USING decode(subject_key, 'hex');
ALTER TABLE log_nodes ALTER COLUMN hash TYPE BYTEA USING decode(hash, 'hex');

-- An event's leaf is `{"chain_hash": …, "type": "event" or "erasure"}`: its row holds both, so
-- the text is written out when read rather than stored a second time. A stored leaf that does
-- not read as its event does (changed behind the server's back) is kept, so verify still sees it.
ALTER TABLE log_leaves ALTER COLUMN data DROP NOT NULL;
UPDATE log_leaves l SET data = NULL FROM events e
WHERE e.id = l.event_id AND l.data = '{"chain_hash":"' || encode(e.chain_hash, 'hex')
      || '","type":"' || CASE WHEN e.kind = 'erased' THEN 'erasure' ELSE 'event' END || '"}';
