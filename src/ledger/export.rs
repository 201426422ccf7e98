//! Exports of the ledger as CSV (RFC 4180, safe to open in a spreadsheet) or JSON lines,
//! streamed page by page in constant memory. Each row carries its chain hash, so an export can
//! be checked against `assent verify`.

use std::io::Write;

use serde::Serialize;

use super::{Receipt, receipt};
use crate::db::ledger::{Event, EventFilter, event_horizon, list_events};
use crate::db::{DbConnection, DbError};

/// A filter on the ledger's events as people write it (the API's and the admin view's query
/// parameters, the command line's flags); empty values mean "any".
#[derive(Debug, Default, Clone, Copy)]
pub struct FilterText<'a> {
    pub document: Option<&'a str>,
    pub version: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

/// Why a filter is refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// An unknown document, or one outside the caller's audience.
    #[error(transparent)]
    Refused(#[from] crate::domain::rules::Refusal),
    #[error("{0}")]
    Invalid(String),
}

/// Turns a filter as written into the database's, refusing what does not parse or names a
/// document that is not published (or not the caller's audience's). One rule for the API, the
/// admin view and the command line. `keys` are needed only to filter by subject.
pub fn parse_filter(
    text: FilterText<'_>,
    catalog: &crate::domain::Catalog,
    keys: Option<&super::SubjectKeys>,
    audience: Option<&crate::domain::Audience>,
) -> Result<EventFilter, FilterError> {
    use crate::domain::{Slug, SubjectId, parse_effective, rules};
    fn given(v: Option<&str>) -> Option<&str> {
        v.filter(|s| !s.is_empty())
    }
    let mut f = EventFilter::default();
    if let Some(d) = given(text.document) {
        let doc = Slug::parse(d).ok().and_then(|s| catalog.document(&s));
        let doc = doc.ok_or_else(|| rules::Refusal::UnknownDocument(d.to_owned()))?;
        rules::within(doc, audience)?;
        f.document = Some(doc.slug.to_string());
    } else {
        f.documents = rules::Visible::to(catalog, audience).documents();
    }
    if let Some(v) = given(text.version) {
        f.version = Some(
            v.parse::<i32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| FilterError::Invalid(format!("version `{v}` is not a version number")))?,
        );
    }
    if let Some(k) = given(text.kind) {
        if super::Kind::parse(k).is_none() {
            return Err(FilterError::Invalid(format!(
                "kind `{k}` is not one of accepted, declined, withdrawn, erasure_requested, erased"
            )));
        }
        f.kind = Some(k.to_owned());
    }
    if let Some(s) = given(text.subject) {
        let subject = SubjectId::parse(s).map_err(|e| FilterError::Invalid(e.to_string()))?;
        let keys = keys.ok_or_else(|| FilterError::Invalid("a subject cannot be looked up here".into()))?;
        f.subject_key = Some(keys.key(&subject));
    }
    let time = |raw: Option<&str>, name: &str| -> Result<Option<chrono::NaiveDateTime>, FilterError> {
        given(raw)
            .map(|s| {
                parse_effective(s)
                    .map(crate::db::to_stored_time)
                    .map_err(|e| FilterError::Invalid(format!("{name}: {e}")))
            })
            .transpose()
    };
    f.since = time(text.since, "since")?;
    f.until = time(text.until, "until")?;
    Ok(f)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = crate::domain::InvalidValue;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::Jsonl),
            other => {
                Err(crate::domain::InvalidValue(format!("`{other}` is not an export format: use `csv` or `jsonl`")))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] DbError),
    // The cause is the source (not also in the message: `{:#}` would print it twice), so that
    // a closed pipe is found as one.
    #[error("writing the export")]
    Io(#[from] std::io::Error),
    #[error("writing the export: {0}")]
    Csv(csv::Error),
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        if !e.is_io_error() {
            return Self::Csv(e);
        }
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Self::Io(io),
            other => Self::Csv(csv::Error::from(std::io::Error::other(format!("{other:?}")))),
        }
    }
}

/// Events read per query.
const PAGE: i64 = 1_000;

pub const CSV_HEADER: [&str; 18] = [
    "event_id",
    "seq",
    "subject",
    "kind",
    "document",
    "version",
    "covers",
    "recorded_at",
    "recorded_by",
    "method",
    "ip",
    "user_agent",
    "locale",
    "idempotency_key",
    "prev_hash",
    "chain_hash",
    "log_index",
    "erased",
];

/// A cell a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, or a tab or carriage
/// return first) gets a leading apostrophe, so that opening an export never runs anything.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn csv_row(event: &Event) -> Result<Vec<String>, DbError> {
    let r = receipt(event)?;
    let row = &event.row;
    let covers: Vec<String> =
        r.covers.iter().map(|c| format!("{} v{} sha256:{}", c.document, c.version, c.sha256)).collect();
    let cells = [
        row.id.to_string(),
        row.seq.to_string(),
        event.subject().unwrap_or_default().to_owned(),
        row.kind.clone(),
        row.document.clone().unwrap_or_default(),
        row.version.map(|v| v.to_string()).unwrap_or_default(),
        covers.join("; "),
        r.recorded_at,
        row.recorded_by.clone(),
        row.method.clone(),
        event.ip().unwrap_or_default().to_owned(),
        event.user_agent().unwrap_or_default().to_owned(),
        row.locale.clone().unwrap_or_default(),
        row.idempotency_key.clone().unwrap_or_default(),
        row.prev_hash.clone(),
        row.chain_hash.clone(),
        r.log_index.map(|i| i.to_string()).unwrap_or_default(),
        event.erased().to_string(),
    ];
    Ok(cells.iter().map(|c| neutralise(c).into_owned()).collect())
}

/// One event as every front end shows it (API, `/me`, exports, the CLI): the receipt, how it
/// was recorded, the evidence, and what the chain commits to in place of personal values.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    #[serde(flatten)]
    pub receipt: Receipt,
    pub recorded_by: String,
    pub method: String,
    pub evidence: EvidenceView,
    pub prev_hash: String,
    /// The subject's personal data was erased: `subject`, `ip` and `user_agent` are gone.
    pub erased: bool,
    /// The salted hashes the chain commits to, and the salts that open them (until erased).
    pub hashes: HashesView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvidenceView {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HashesView {
    pub subject: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub salt: Option<String>,
    pub evidence_salt: Option<String>,
}

impl EventView {
    pub fn of(event: &Event) -> Result<Self, DbError> {
        let row = &event.row;
        Ok(Self {
            receipt: receipt(event)?,
            recorded_by: row.recorded_by.clone(),
            method: row.method.clone(),
            evidence: EvidenceView {
                ip: event.ip().map(str::to_owned),
                user_agent: event.user_agent().map(str::to_owned),
                locale: row.locale.clone(),
            },
            prev_hash: row.prev_hash.clone(),
            erased: event.erased(),
            hashes: HashesView {
                subject: row.subject_hash.clone(),
                ip: row.ip_hash.clone(),
                user_agent: row.user_agent_hash.clone(),
                salt: event.personal.as_ref().map(|p| p.salt.clone()),
                evidence_salt: event.personal.as_ref().and_then(|p| p.evidence_salt.clone()),
            },
        })
    }
}

/// One event as JSON.
pub fn event_json(event: &Event) -> Result<serde_json::Value, DbError> {
    serde_json::to_value(EventView::of(event)?).map_err(|e| DbError::Corrupt(e.to_string()))
}

/// Writes every event matching `filter` (as of now: events arriving meanwhile are left for the
/// next export) and returns how many. Memory stays at one page whatever the ledger's size.
pub fn export(
    conn: &mut DbConnection,
    filter: &EventFilter,
    format: Format,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    match format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().buffer_capacity(64 * 1024).from_writer(&mut *out);
            w.write_record(CSV_HEADER)?;
            let n = each_page(conn, filter, |rows| {
                for row in rows {
                    w.write_record(csv_row(row)?)?;
                }
                Ok(w.flush()?)
            })?;
            w.flush()?;
            Ok(n)
        }
        Format::Jsonl => {
            let n = each_page(conn, filter, |rows| {
                for row in rows {
                    serde_json::to_writer(&mut *out, &event_json(row)?).map_err(std::io::Error::from)?;
                    out.write_all(b"\n")?;
                }
                Ok(out.flush()?)
            })?;
            Ok(n)
        }
    }
}

/// Walks the matching events page by page up to a horizon taken at the start.
fn each_page(
    conn: &mut DbConnection,
    filter: &EventFilter,
    mut f: impl FnMut(&[Event]) -> Result<(), ExportError>,
) -> Result<usize, ExportError> {
    let horizon = event_horizon(conn)?;
    let (mut after, mut written) = (0, 0);
    loop {
        let page = list_events(conn, filter, after, horizon, PAGE)?;
        let Some(last) = page.last() else { return Ok(written) };
        after = last.row.id;
        written += page.len();
        f(&page)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_round_trip_commas_quotes_newlines_and_unicode() {
        let row = crate::db::ledger::EventRow {
            id: 7,
            subject_key: "k".into(),
            seq: 1,
            kind: "accepted".into(),
            document: Some("terms".into()),
            version: Some(2),
            covers_id: 1,
            covers: Some(r#"[{"document":"terms","sha256":"ab","version":2}]"#.into()),
            recorded_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap().naive_utc(),
            recorded_by: "host".into(),
            method: "api".into(),
            subject_hash: "s".into(),
            ip_hash: None,
            user_agent_hash: Some("u".into()),
            locale: Some("=1+1".into()),
            idempotency_key: None,
            request_hash: None,
            prev_hash: "0".repeat(64),
            chain_hash: "f".repeat(64),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(CSV_HEADER).unwrap();
        let personal = crate::db::ledger::PersonalRow {
            event_id: 7,
            subject: "Zoë, \"the\" 用户".into(),
            salt: "00".into(),
            ip: None,
            user_agent: Some("line one\r\nline \"two\", three".into()),
            evidence_salt: Some("01".into()),
        };
        let event = Event { row, personal: Some(personal), log_index: Some(3) };
        w.write_record(csv_row(&event).unwrap()).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = csv::Reader::from_reader(&bytes[..]);
        let back = r.records().next().unwrap().unwrap();
        assert_eq!(&back[2], "Zoë, \"the\" 用户");
        assert_eq!(&back[6], "terms v2 sha256:ab");
        assert_eq!(&back[11], "line one\r\nline \"two\", three");
        assert_eq!(&back[12], "'=1+1");
        assert_eq!(&back[15], "f".repeat(64));
        assert!(
            String::from_utf8(bytes).unwrap().contains("\"line one\r\nline \"\"two\"\", three\""),
            "RFC 4180 quoting"
        );
    }

    #[test]
    fn formula_prefixes_are_neutralised() {
        for (raw, safe) in [
            ("=SUM(A1)", "'=SUM(A1)"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("plain", "plain"),
            ("", ""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(neutralise(raw), safe);
        }
    }
}
