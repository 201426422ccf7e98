//! Statements kept prepared on their connection, for the recording path.
//!
//! Diesel prepares every UPDATE and upsert afresh each time it runs, and every INSERT with an
//! optional value, because their SQL *can* vary with the values (on SQLite a `None` drops its
//! column), and only a statement whose text is fixed may be cached. On SQLite's writer that
//! compiling was a seventh of the time spent per decision. The few statements every decision
//! runs are therefore written here with a fixed text: each is a type with a static query id,
//! so diesel keeps it prepared on the connection and only binds new values (on PostgreSQL it
//! becomes a named prepared statement). Unlike diesel's DSL, the text is not checked against
//! `schema.rs` when compiling; every test that records a decision runs it on both databases.
//!
//! Lookups by a unique key say `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite
//! compiles a statement again each time a new value is bound to a parameter that its query plan
//! may depend on, which a `LIMIT` parameter is.
//!
//! [`statement!`] writes the type: SQL text and parameters in the order they appear. The text is
//! the same on both databases (diesel writes `?` or `$n` for each parameter).

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::MultiBackend;

/// Defines a statement type: `statement! { pub struct Name<'a> -> ReturnedSqlType? { "SQL", field: Rust
/// => SqlType, "SQL", field: Rust => SqlType, ...; "closing SQL" } }`.
macro_rules! statement {
    (
        $(#[$doc:meta])*
        pub struct $name:ident<$a:lifetime> $(-> $returns:ty)? {
            $($sql:literal, $field:ident: $rust:ty => $sql_type:ty,)*
            ; $tail:literal $(,)?
        }
    ) => {
        $(#[$doc])*
        pub struct $name<$a> {
            $(pub $field: $rust,)*
        }

        impl QueryFragment<MultiBackend> for $name<'_> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
                $(
                    out.push_sql($sql);
                    out.push_bind_param::<$sql_type, _>(&self.$field)?;
                )*
                out.push_sql($tail);
                Ok(())
            }
        }

        impl QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        $(impl Query for $name<'_> {
            type SqlType = $returns;
        })?

        impl<Conn> RunQueryDsl<Conn> for $name<'_> {}
    };
}

statement! {
    /// Appends an event; returns its id.
    pub struct InsertEvent<'a> -> BigInt {
        "INSERT INTO events (subject_key, seq, kind, document, version, covers_id, recorded_at, recorded_by, \
         method, subject_hash, ip_hash, user_agent_hash, locale, idempotency_key, request_hash, prev_hash, \
         chain_hash) VALUES (", subject_key: &'a [u8] => Binary,
        ", ", seq: i64 => BigInt,
        ", ", kind: &'a str => Text,
        ", ", document: Option<&'a str> => Nullable<Text>,
        ", ", version: Option<i32> => Nullable<Integer>,
        ", ", covers_id: i64 => BigInt,
        ", ", recorded_at: chrono::NaiveDateTime => Timestamp,
        ", ", recorded_by: &'a str => Text,
        ", ", method: &'a str => Text,
        ", ", subject_hash: &'a [u8] => Binary,
        ", ", ip_hash: Option<&'a [u8]> => Nullable<Binary>,
        ", ", user_agent_hash: Option<&'a [u8]> => Nullable<Binary>,
        ", ", locale: Option<&'a str> => Nullable<Text>,
        ", ", idempotency_key: Option<&'a str> => Nullable<Text>,
        ", ", request_hash: Option<&'a [u8]> => Nullable<Binary>,
        ", ", prev_hash: &'a [u8] => Binary,
        ", ", chain_hash: &'a [u8] => Binary,
        ; ") RETURNING id",
    }
}

statement! {
    /// The id of a covers text, if it is stored (any of them, should two writers on PostgreSQL
    /// have stored it at once: each reads the same).
    pub struct FindCovers<'a> -> BigInt {
        "SELECT id FROM covers_sets WHERE covers = ", covers: &'a str => Text,
        ; " LIMIT 1",
    }
}

statement! {
    /// Stores a covers text; returns its id.
    pub struct InsertCovers<'a> -> BigInt {
        "INSERT INTO covers_sets (covers) VALUES (", covers: &'a str => Text,
        ; ") RETURNING id",
    }
}

statement! {
    /// Keeps an event's erasable personal data.
    pub struct InsertPersonal<'a> {
        "INSERT INTO event_personal (event_id, subject, salt, ip, user_agent, evidence_salt) VALUES (",
        event_id: i64 => BigInt,
        ", ", subject: &'a str => Text,
        ", ", salt: &'a [u8] => Binary,
        ", ", ip: Option<&'a str> => Nullable<Text>,
        ", ", user_agent: Option<&'a str> => Nullable<Text>,
        ", ", evidence_salt: Option<&'a [u8]> => Nullable<Binary>,
        ; ")",
    }
}

statement! {
    /// Moves a subject's chain head, creating it for a first event.
    pub struct UpsertHead<'a> {
        "INSERT INTO subject_heads (subject_key, seq, chain_hash) VALUES (", subject_key: &'a [u8] => Binary,
        ", ", seq: i64 => BigInt,
        ", ", chain_hash: &'a [u8] => Binary,
        ; ") ON CONFLICT (subject_key) DO UPDATE SET seq = excluded.seq, chain_hash = excluded.chain_hash",
    }
}

statement! {
    /// Sets a subject's latest decision on one document.
    pub struct UpsertState<'a> {
        "INSERT INTO subject_documents (subject_key, document, state, version, covers_id, last_event_id, updated_at) \
         VALUES (", subject_key: &'a [u8] => Binary,
        ", ", document: &'a str => Text,
        ", ", state: &'a str => Text,
        ", ", version: Option<i32> => Nullable<Integer>,
        ", ", covers_id: i64 => BigInt,
        ", ", last_event_id: i64 => BigInt,
        ", ", updated_at: chrono::NaiveDateTime => Timestamp,
        ; ") ON CONFLICT (subject_key, document) DO UPDATE SET state = excluded.state, version = excluded.version, \
         covers_id = excluded.covers_id, last_event_id = excluded.last_event_id, updated_at = excluded.updated_at",
    }
}

statement! {
    /// Sets a subject's latest decision on an agreement to an acceptance of `version`, unless the
    /// subject accepted a newer version before (then it writes nothing: no row is affected). The
    /// acceptance itself (`accepted_covers_id`, `accepted_at`) stays through later declines and
    /// withdrawals, which [`UpsertState`] writes.
    pub struct UpsertAcceptance<'a> {
        "INSERT INTO subject_documents (subject_key, document, state, version, covers_id, last_event_id, updated_at, \
         highest_accepted, accepted_covers_id, accepted_at) VALUES (", subject_key: &'a [u8] => Binary,
        ", ", document: &'a str => Text,
        ", 'accepted', ", version: i32 => Integer,
        ", ", covers_id: i64 => BigInt,
        ", ", last_event_id: i64 => BigInt,
        ", ", updated_at: chrono::NaiveDateTime => Timestamp,
        ", ", highest_accepted: i32 => Integer,
        ", ", accepted_covers_id: i64 => BigInt,
        ", ", accepted_at: chrono::NaiveDateTime => Timestamp,
        ; ") ON CONFLICT (subject_key, document) DO UPDATE SET state = excluded.state, version = excluded.version, \
         covers_id = excluded.covers_id, last_event_id = excluded.last_event_id, updated_at = excluded.updated_at, \
         highest_accepted = excluded.highest_accepted, accepted_covers_id = excluded.accepted_covers_id, \
         accepted_at = excluded.accepted_at \
         WHERE subject_documents.highest_accepted IS NULL OR subject_documents.highest_accepted <= excluded.highest_accepted",
    }
}

statement! {
    /// The outbox: one delivery of an event for every endpoint subscribed to its type
    /// (`events_like` is `%,accepted,%`), in the event's own transaction.
    pub struct EnqueueEvent<'a> {
        "INSERT INTO webhook_deliveries (endpoint_id, event_type, event_id, subject, created_at, state, attempts, \
         retry_since, next_attempt_at) SELECT id, ", event_type: &'a str => Text,
        ", ", event_id: i64 => BigInt,
        ", ", subject: Option<&'a str> => Nullable<Text>,
        ", ", created_at: chrono::NaiveDateTime => Timestamp,
        ", 'pending', 0, ", retry_since: chrono::NaiveDateTime => Timestamp,
        ", ", next_attempt_at: chrono::NaiveDateTime => Timestamp,
        " FROM webhook_endpoints WHERE removed_at IS NULL AND events LIKE ", events_like: &'a str => Text,
        ; "",
    }
}
