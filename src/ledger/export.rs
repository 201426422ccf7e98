//! Exports of the ledger as CSV (RFC 4180, safe to open in a spreadsheet) or JSON lines,
//! streamed page by page in constant memory. Each row carries its chain hash, so an export can
//! be checked against `assent verify`.

use std::io::Write;

use serde_json::json;

use super::receipt;
use crate::db::ledger::{EventFilter, EventRow, event_horizon, list_events};
use crate::db::{DbConnection, DbError};

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
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the export: {0}")]
    Csv(#[from] csv::Error),
}

/// Events read per query.
const PAGE: i64 = 1_000;

pub const CSV_HEADER: [&str; 16] = [
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
];

/// A cell a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, or a tab or carriage
/// return first) gets a leading apostrophe, so that opening an export never runs anything.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn csv_row(row: &EventRow) -> Result<Vec<String>, DbError> {
    let r = receipt(row)?;
    let covers: Vec<String> =
        r.covers.iter().map(|c| format!("{} v{} sha256:{}", c.document, c.version, c.sha256)).collect();
    let cells = [
        row.id.to_string(),
        row.seq.to_string(),
        row.subject.clone(),
        row.kind.clone(),
        row.document.clone(),
        row.version.map(|v| v.to_string()).unwrap_or_default(),
        covers.join("; "),
        r.recorded_at,
        row.recorded_by.clone(),
        row.method.clone(),
        row.ip.clone().unwrap_or_default(),
        row.user_agent.clone().unwrap_or_default(),
        row.locale.clone().unwrap_or_default(),
        row.idempotency_key.clone().unwrap_or_default(),
        row.prev_hash.clone(),
        row.chain_hash.clone(),
    ];
    Ok(cells.iter().map(|c| neutralise(c).into_owned()).collect())
}

/// One event as JSON: the receipt plus how it was recorded.
pub fn event_json(row: &EventRow) -> Result<serde_json::Value, DbError> {
    let mut value = serde_json::to_value(receipt(row)?).map_err(|e| DbError::Corrupt(e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("recorded_by".into(), json!(row.recorded_by));
        obj.insert("method".into(), json!(row.method));
        obj.insert("evidence".into(), json!({"ip": row.ip, "user_agent": row.user_agent, "locale": row.locale}));
        obj.insert("prev_hash".into(), json!(row.prev_hash));
    }
    Ok(value)
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
                    serde_json::to_writer(&mut *out, &event_json(row)?).map_err(std::io::Error::other)?;
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
    mut f: impl FnMut(&[EventRow]) -> Result<(), ExportError>,
) -> Result<usize, ExportError> {
    let horizon = event_horizon(conn)?;
    let (mut after, mut written) = (0, 0);
    loop {
        let page = list_events(conn, filter, after, horizon, PAGE)?;
        let Some(last) = page.last() else { return Ok(written) };
        after = last.id;
        written += page.len();
        f(&page)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_round_trip_commas_quotes_newlines_and_unicode() {
        let row = EventRow {
            id: 7,
            subject: "Zoë, \"the\" 用户".into(),
            seq: 1,
            kind: "accepted".into(),
            document: "terms".into(),
            version: Some(2),
            covers: r#"[{"document":"terms","sha256":"ab","version":2}]"#.into(),
            recorded_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap().naive_utc(),
            recorded_by: "host".into(),
            method: "api".into(),
            ip: None,
            user_agent: Some("line one\r\nline \"two\", three".into()),
            locale: Some("=1+1".into()),
            idempotency_key: None,
            request_hash: None,
            prev_hash: "0".repeat(64),
            chain_hash: "f".repeat(64),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(CSV_HEADER).unwrap();
        w.write_record(csv_row(&row).unwrap()).unwrap();
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
