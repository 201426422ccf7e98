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
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        subject -> Text,
        seq -> BigInt,
        kind -> Text,
        document -> Text,
        version -> Nullable<Integer>,
        covers -> Text,
        recorded_at -> Timestamp,
        recorded_by -> Text,
        method -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        locale -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        prev_hash -> Text,
        chain_hash -> Text,
    }
}

diesel::table! {
    subject_heads (subject) {
        subject -> Text,
        seq -> BigInt,
        chain_hash -> Text,
    }
}

diesel::table! {
    subject_documents (subject, document) {
        subject -> Text,
        document -> Text,
        state -> Text,
        version -> Nullable<Integer>,
        covers -> Text,
        last_event_id -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}
