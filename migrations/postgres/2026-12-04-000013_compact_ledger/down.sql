UPDATE log_leaves l SET data = '{"chain_hash":"' || encode(e.chain_hash, 'hex')
      || '","type":"' || CASE WHEN e.kind = 'erased' THEN 'erasure' ELSE 'event' END || '"}'
FROM events e WHERE e.id = l.event_id AND l.data IS NULL;
ALTER TABLE log_leaves ALTER COLUMN data SET NOT NULL;
ALTER TABLE events
    ALTER COLUMN subject_key TYPE TEXT USING encode(subject_key, 'hex'),
    ALTER COLUMN subject_hash TYPE TEXT USING encode(subject_hash, 'hex'),
    ALTER COLUMN ip_hash TYPE TEXT USING encode(ip_hash, 'hex'),
    ALTER COLUMN user_agent_hash TYPE TEXT USING encode(user_agent_hash, 'hex'),
    ALTER COLUMN request_hash TYPE TEXT USING encode(request_hash, 'hex'),
    ALTER COLUMN prev_hash TYPE TEXT USING encode(prev_hash, 'hex'),
    ALTER COLUMN chain_hash TYPE TEXT USING encode(chain_hash, 'hex');
ALTER TABLE event_personal
    ALTER COLUMN salt TYPE TEXT USING encode(salt, 'hex'),
    ALTER COLUMN evidence_salt TYPE TEXT USING encode(evidence_salt, 'hex');
ALTER TABLE subject_heads
    ALTER COLUMN subject_key TYPE TEXT USING encode(subject_key, 'hex'),
    ALTER COLUMN chain_hash TYPE TEXT USING encode(chain_hash, 'hex');
ALTER TABLE subject_documents ALTER COLUMN subject_key TYPE TEXT USING encode(subject_key, 'hex');
ALTER TABLE log_nodes ALTER COLUMN hash TYPE TEXT USING encode(hash, 'hex');
