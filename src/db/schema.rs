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
