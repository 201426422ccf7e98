//! The printable evidence record (`/me/record`, and `/admin/record` for staff): each decision
//! with what was shown, its chain hash, its leaf in the log and an inclusion proof against the
//! newest signed checkpoint. One view for both front ends.

use askama::Template;
use chrono::Utc;

use super::{AppState, PageError};
use crate::domain::SubjectId;
use crate::views::human_time;

pub struct RecordRow {
    pub seq: i64,
    pub kind: String,
    pub when: String,
    pub recorded_at: String,
    pub method: String,
    pub erased: bool,
    /// (document, version, sha256) of what was shown.
    pub covers: Vec<(String, u32, String)>,
    pub chain_hash: String,
    pub prev_hash: String,
    /// The leaf's bytes (`{"chain_hash":…,"type":"event"|"erasure"}`) and their RFC 9162 hash.
    pub leaf: String,
    pub leaf_hash: String,
    /// None until the log takes the event in.
    pub log_index: Option<i64>,
    pub proof: Vec<String>,
}

#[derive(Template)]
#[template(path = "record.html")]
pub struct RecordPage {
    pub subject: String,
    pub origin: String,
    pub generated: String,
    pub rows: Vec<RecordRow>,
    pub checkpoint: String,
    pub verifier: String,
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "accepted" => "Accepted",
        "declined" => "Declined",
        "withdrawn" => "Withdrew",
        "erasure_requested" => "Asked for erasure",
        "erased" => "Erased",
        _ => "Recorded",
    }
}

/// Builds the record of `subject` against the newest checkpoint.
pub async fn record_page(state: &AppState, subject: &SubjectId, origin: String) -> Result<RecordPage, PageError> {
    let key = state.subject_keys.key(subject);
    let (events, head) = state.db.run(move |c| crate::log::evidence_record(c, &key)).await?;
    let mut rows = Vec::with_capacity(events.len());
    for proven in events {
        let receipt = crate::ledger::receipt(&proven.event)?;
        let row = &proven.event.row;
        rows.push(RecordRow {
            seq: row.seq,
            kind: kind_label(&row.kind).to_owned(),
            when: human_time(crate::db::from_stored_time(row.recorded_at)),
            recorded_at: receipt.recorded_at.clone(),
            method: match row.method.as_str() {
                "consent_page" | "me" => "on Assent's own pages".into(),
                "cli" => "by the operator's command line".into(),
                _ => format!("through the application ({})", row.recorded_by),
            },
            erased: proven.event.erased(),
            covers: receipt
                .covers
                .iter()
                .map(|c| (c.document.to_string(), c.version.get(), c.sha256.clone()))
                .collect(),
            chain_hash: row.chain_hash.clone(),
            prev_hash: row.prev_hash.clone(),
            leaf: crate::log::event_leaf(&row.kind, &row.chain_hash),
            leaf_hash: crate::log::to_hex(&crate::log::tree::leaf_hash(
                crate::log::event_leaf(&row.kind, &row.chain_hash).as_bytes(),
            )),
            log_index: receipt.log_index,
            proof: proven.proof.iter().map(crate::log::to_hex).collect(),
        });
    }
    Ok(RecordPage {
        subject: subject.to_string(),
        origin,
        generated: human_time(Utc::now()),
        rows,
        checkpoint: state.log_key.checkpoint(head.size, &head.root),
        verifier: state.log_key.verifier(),
    })
}
