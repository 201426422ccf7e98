//! Table definitions shared by both backends (only types both support: see DEPENDENCIES.md).

diesel::table! {
    documents (id) {
        id -> BigInt,
        slug -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// One row per published file: the original (`locale` = '') or a translation.
    versions (id) {
        id -> BigInt,
        document_id -> BigInt,
        version -> Integer,
        locale -> Text,
        title -> Text,
        effective -> Timestamp,
        material -> Bool,
        summary -> Nullable<Text>,
        part_of -> Nullable<Text>,
        acceptance -> Text,
        sha256 -> Text,
        source -> Text,
        body -> Text,
        html -> Text,
        toc -> Text,
        published_at -> Timestamp,
        audiences -> Nullable<Text>,
        reaccept_after -> Nullable<BigInt>,
    }
}

diesel::joinable!(versions -> documents (document_id));
diesel::allow_tables_to_appear_in_same_query!(documents, versions);

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scope -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        audience -> Nullable<Text>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        subject_key -> Binary,
        seq -> BigInt,
        kind -> Text,
        document -> Nullable<Text>,
        version -> Nullable<Integer>,
        /// What the event covers: a row of `covers_sets`.
        covers_id -> BigInt,
        recorded_at -> Timestamp,
        recorded_by -> Text,
        method -> Text,
        subject_hash -> Binary,
        ip_hash -> Nullable<Binary>,
        user_agent_hash -> Nullable<Binary>,
        locale -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Binary>,
        prev_hash -> Binary,
        chain_hash -> Binary,
    }
}

diesel::table! {
    /// What events and status rows cover (a JSON list of documents, versions and hashes), each
    /// text once: thousands of rows cover alike.
    covers_sets (id) {
        id -> BigInt,
        covers -> Text,
    }
}

diesel::table! {
    /// Erasable personal data of an event.
    event_personal (event_id) {
        event_id -> BigInt,
        subject -> Text,
        salt -> Binary,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        evidence_salt -> Nullable<Binary>,
    }
}

diesel::table! {
    subject_heads (subject_key) {
        subject_key -> Binary,
        seq -> BigInt,
        chain_hash -> Binary,
    }
}

diesel::table! {
    subject_documents (subject_key, document) {
        subject_key -> Binary,
        document -> Text,
        state -> Text,
        version -> Nullable<Integer>,
        covers_id -> BigInt,
        last_event_id -> BigInt,
        updated_at -> Timestamp,
        highest_accepted -> Nullable<Integer>,
        accepted_covers_id -> Nullable<BigInt>,
        accepted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    log_leaves (idx) {
        idx -> BigInt,
        event_id -> Nullable<BigInt>,
        version_id -> Nullable<BigInt>,
        /// A version's leaf bytes; NULL for an event's, which are written out from its row.
        data -> Nullable<Text>,
    }
}

diesel::table! {
    log_nodes (level, idx) {
        level -> Integer,
        idx -> BigInt,
        hash -> Binary,
    }
}

diesel::table! {
    log_queue (id) {
        id -> BigInt,
        event_id -> Nullable<BigInt>,
        version_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    log_state (id) {
        id -> Integer,
        size -> BigInt,
        root -> Text,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(events, event_personal, log_leaves, covers_sets, subject_documents);

diesel::table! {
    webhook_endpoints (id) {
        id -> BigInt,
        url -> Text,
        events -> Text,
        secret -> Text,
        created_at -> Timestamp,
        created_by -> Text,
        removed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        endpoint_id -> BigInt,
        event_type -> Text,
        event_id -> Nullable<BigInt>,
        version_id -> Nullable<BigInt>,
        subject -> Nullable<Text>,
        created_at -> Timestamp,
        state -> Text,
        attempts -> Integer,
        retry_since -> Timestamp,
        next_attempt_at -> Nullable<Timestamp>,
        lease -> Nullable<Text>,
        last_attempt_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(webhook_endpoints, webhook_deliveries);
