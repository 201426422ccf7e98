//! The one path from "someone asks to record a decision" to what the ledger records. The JSON
//! API and the consent pages both come here with domain values; neither builds the other's
//! request. The rules that need the subject's own history (nothing to withdraw, never
//! backwards) are checked where it is read, inside the recording transaction
//! (`ledger::record_once`).

use chrono::{DateTime, Utc};

use super::{Action, Evidence, Kind, Method, NewDecision, SubjectKeys};
use crate::domain::rules::{self, Refusal};
use crate::domain::{Audience, Catalog, IdempotencyKey, Slug, SubjectId, VersionNumber};

/// A decision someone asks to record.
#[derive(Debug, Clone)]
pub struct Ask {
    pub subject: SubjectId,
    /// The document as named in the request (it may name nothing published).
    pub document: String,
    /// `Accepted`, `Declined` or `Withdrawn`.
    pub kind: Kind,
    /// The version decided on; a withdrawal names none.
    pub version: Option<u32>,
    /// Already checked and minimised (`Evidence::new`).
    pub evidence: Evidence,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Who recorded it: the API key's name, or `consent_page`.
    pub recorded_by: String,
    pub method: Method,
    /// The request exactly as the client sent it, when it can be retried under its idempotency
    /// key: a retry must repeat it (after JSON canonicalisation), or it is a different request
    /// (422). The consent page sends none: its keys are its own, one per link and agreement.
    pub sent: Option<String>,
    /// The audience the asker is restricted to (its key's, or its consent link's): a document
    /// that does not apply to it is refused.
    pub audience: Option<Audience>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The version the consent page's answer accepts or declines: the current one, or with
/// `upcoming` the upcoming one where there is one; the first version when none is in effect yet.
pub fn offered(catalog: &Catalog, slug: &Slug, upcoming: bool, now: DateTime<Utc>) -> Option<VersionNumber> {
    let doc = catalog.document(slug)?;
    let chosen = if upcoming { doc.upcoming(now).or_else(|| doc.current(now)) } else { doc.current(now) };
    chosen.or_else(|| doc.versions.first()).map(|v| v.number)
}

/// Checks `ask` against the catalog at `now` (contract §2) and builds what the ledger records:
/// for an acceptance, the version with the newest version of each of the agreement's parts.
pub fn plan(catalog: &Catalog, keys: &SubjectKeys, ask: Ask, now: DateTime<Utc>) -> Result<NewDecision, DecideError> {
    let action = match (ask.kind, ask.version) {
        (Kind::Withdrawn, Some(_)) => {
            return Err(DecideError::Invalid("a withdrawal names the document only, not a version".into()));
        }
        (Kind::Withdrawn, None) => {
            rules::within(rules::agreement(catalog, &ask.document)?, ask.audience.as_ref())?;
            Action::Withdraw
        }
        (Kind::Accepted | Kind::Declined, None) => return Err(DecideError::Invalid("`version` is required".into())),
        (Kind::Accepted, Some(version)) => {
            let (doc, covers) = rules::decidable(catalog, &ask.document, version, now)?;
            rules::within(doc, ask.audience.as_ref())?;
            Action::Accept { version: covers[0].version, covers }
        }
        (Kind::Declined, Some(version)) => {
            let (doc, covers) = rules::decidable(catalog, &ask.document, version, now)?;
            rules::within(doc, ask.audience.as_ref())?;
            Action::Decline { version: covers[0].version, covers: covers.into_iter().take(1).collect() }
        }
        (Kind::ErasureRequested | Kind::Erased, _) => {
            return Err(DecideError::Invalid(format!("`{}` is not a decision on a document", ask.kind.as_str())));
        }
    };
    let document = Slug::parse(&ask.document).map_err(|e| DecideError::Invalid(e.to_string()))?;
    let request_hash =
        ask.idempotency_key.as_ref().and(ask.sent.as_ref()).map(|sent| keys.request_hash(sent.as_bytes()));
    Ok(NewDecision {
        subject_key: keys.key(&ask.subject),
        subject: ask.subject,
        document: Some(document),
        action,
        recorded_by: ask.recorded_by,
        method: ask.method,
        evidence: ask.evidence,
        idempotency_key: ask.idempotency_key.map(|k| k.as_str().to_owned()),
        request_hash,
    })
}
