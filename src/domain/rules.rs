//! Which version a subject must accept (contract §2), as pure functions over the catalog and a
//! subject's latest decision per agreement.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Acceptance, Audience, Catalog, DocumentInfo, Slug, VersionInfo, VersionNumber};

/// One version an event covers, with the content hash of what the subject was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Covered {
    #[schema(value_type = String)]
    pub document: Slug,
    pub sha256: String,
    #[schema(value_type = u32, minimum = 1)]
    pub version: VersionNumber,
}

/// A subject's latest decision on one agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accepted `version` of the agreement at `at`; `covers` lists it and each part accepted
    /// with it.
    Accepted {
        version: VersionNumber,
        covers: Vec<Covered>,
        at: DateTime<Utc>,
    },
    Declined,
    Withdrawn,
}

/// Where a subject stands on one agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Accepted,
    Pending,
    Never,
    Declined,
    Withdrawn,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Pending => "pending",
            Self::Never => "never",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentStatus {
    pub slug: Slug,
    pub state: State,
    /// The agreement's version in the subject's standing acceptance (accepted, pending or
    /// expired).
    pub accepted_version: Option<VersionNumber>,
    pub current_version: Option<VersionNumber>,
    pub upcoming_version: Option<VersionNumber>,
    /// Since when the subject has been asked to accept (when not `accepted`): the newest
    /// material version it lacks took effect, or its acceptance expired. `None` when nothing
    /// is in effect yet, so nothing is required.
    pub required_since: Option<DateTime<Utc>>,
}

impl DocumentStatus {
    /// Whether this agreement asks nothing of the subject now.
    pub fn satisfied(&self) -> bool {
        self.state == State::Accepted || self.required_since.is_none()
    }
}

/// The oldest version a subject may have accepted and still be up to date at `now`: the
/// newest *material* version in effect (version 1 always counts as material: it is the first
/// text anyone accepts). `None` when no version is in effect yet.
pub fn baseline(doc: &DocumentInfo, now: DateTime<Utc>) -> Option<&VersionInfo> {
    doc.versions.iter().rev().filter(|v| v.effective <= now).find(|v| v.material || v.number.get() == 1)
}

/// The agreements subjects are asked to accept: required documents that are not part of another.
pub fn agreements(catalog: &Catalog) -> impl Iterator<Item = &DocumentInfo> {
    catalog.documents.iter().filter(|d| d.acceptance() == Acceptance::Required && d.part_of().is_none())
}

/// The agreements that apply to subjects asked about for `audience` (`None`: all of them).
pub fn agreements_for<'a>(
    catalog: &'a Catalog,
    audience: Option<&'a Audience>,
) -> impl Iterator<Item = &'a DocumentInfo> + 'a {
    agreements(catalog).filter(move |d| d.applies_to(audience))
}

/// How long an acceptance of `doc` counts at `now`: the shortest `reaccept_after` of the
/// versions in effect of the agreement and its parts. `None`: until a material change.
pub fn reaccept_after(catalog: &Catalog, doc: &DocumentInfo, now: DateTime<Utc>) -> Option<TimeDelta> {
    std::iter::once(doc).chain(catalog.parts_of(&doc.slug)).filter_map(|d| d.current(now)?.reaccept_after).min()
}

/// Each agreement's status for a subject whose latest decisions are `decisions`, restricted to
/// `audience`'s agreements when one is given.
pub fn status(
    catalog: &Catalog,
    decisions: &HashMap<Slug, Decision>,
    audience: Option<&Audience>,
    now: DateTime<Utc>,
) -> Vec<DocumentStatus> {
    agreements_for(catalog, audience).map(|doc| standing(catalog, doc, decisions.get(&doc.slug), now)).collect()
}

/// Where a subject whose latest decision on the agreement `doc` is `decision` stands at `now`
/// (contract §2). Every figure Assent shows comes from this function.
pub fn standing(
    catalog: &Catalog,
    doc: &DocumentInfo,
    decision: Option<&Decision>,
    now: DateTime<Utc>,
) -> DocumentStatus {
    // The agreement and each part, with the version each requires now.
    let required: Vec<(&DocumentInfo, &VersionInfo)> = std::iter::once(doc)
        .chain(catalog.parts_of(&doc.slug))
        .filter_map(|d| baseline(d, now).map(|b| (d, b)))
        .collect();
    let newest_requirement = required.iter().map(|(_, b)| b.effective).max();
    let (state, accepted_version, required_since) = match decision {
        None => (State::Never, None, newest_requirement),
        Some(Decision::Declined) => (State::Declined, None, newest_requirement),
        Some(Decision::Withdrawn) => (State::Withdrawn, None, newest_requirement),
        Some(Decision::Accepted { version, covers, at }) => {
            let covered = |d: &DocumentInfo| covers.iter().find(|c| c.document == d.slug).map(|c| c.version);
            let behind = required
                .iter()
                .filter(|(d, b)| covered(d).is_none_or(|v| v < b.number))
                .map(|(_, b)| b.effective)
                .max();
            let expires = reaccept_after(catalog, doc, now).and_then(|d| at.checked_add_signed(d));
            match (behind, expires) {
                (Some(since), _) => (State::Pending, Some(*version), Some(since)),
                (None, Some(expired)) if expired <= now => (State::Expired, Some(*version), Some(expired)),
                (None, _) => (State::Accepted, Some(*version), None),
            }
        }
    };
    DocumentStatus {
        slug: doc.slug.clone(),
        state,
        accepted_version,
        current_version: doc.current(now).map(|v| v.number),
        upcoming_version: doc.upcoming(now).map(|v| v.number),
        required_since,
    }
}

/// Why a decision on a document or version is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no published document `{0}`")]
    UnknownDocument(String),
    #[error("`{0}` is informational: it is published for reading and is never accepted or declined")]
    Informational(Slug),
    #[error(
        "`{part}` is an integral part of `{agreement}`: accept, decline or withdraw `{agreement}`, which covers it"
    )]
    PartOf { part: Slug, agreement: Slug },
    #[error("`{slug}` has no version {version}")]
    UnknownVersion { slug: Slug, version: u32 },
    #[error("version {version} of `{slug}` is superseded: the current version is {current}")]
    Superseded { slug: Slug, version: VersionNumber, current: VersionNumber },
    #[error("`{slug}` does not apply to the audience `{audience}`")]
    OtherAudience { slug: Slug, audience: Audience },
}

/// Why an audience cannot be asked about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    #[error("{0}")]
    Invalid(String),
    #[error("no document names the audience `{0}`; the audiences are: {1}")]
    Unknown(Audience, String),
    #[error("this key is bound to the audience `{key}`; it cannot ask about `{asked}`")]
    OtherThanKeys { key: Audience, asked: Audience },
    #[error("this key is bound to the audience `{key}`; it cannot {what}")]
    Bound { key: Audience, what: &'static str },
}

/// The audience a request is restricted to: the one asked for (`?audience=`, or a consent
/// link's), which documents must name, and which must be the key's own when the key is bound to
/// one; without a question, the key's audience.
pub fn audience_for(
    catalog: &Catalog,
    keys: Option<&Audience>,
    asked: Option<&str>,
) -> Result<Option<Audience>, AudienceError> {
    // Only `?audience=` with nothing is no audience: a value of blanks or control characters
    // is a value, and must name an audience.
    let Some(asked) = asked.filter(|a| !a.is_empty()) else { return Ok(keys.cloned()) };
    let asked = Audience::parse(asked).map_err(|e| AudienceError::Invalid(e.0))?;
    if let Some(key) = keys
        && *key != asked
    {
        return Err(AudienceError::OtherThanKeys { key: key.clone(), asked });
    }
    if !catalog.knows_audience(&asked) {
        let known: Vec<&str> = catalog.audiences().into_iter().map(Audience::as_str).collect();
        let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        return Err(AudienceError::Unknown(asked, known));
    }
    Ok(Some(asked))
}

/// Which events a request restricted to an audience sees: those about a document that applies
/// to it (not those about no document, such as erasures, which concern every audience).
/// Unrestricted, every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible(Option<Vec<Slug>>);

impl Visible {
    pub fn to(catalog: &Catalog, audience: Option<&Audience>) -> Self {
        Self(
            audience
                .map(|_| catalog.documents.iter().filter(|d| d.applies_to(audience)).map(|d| d.slug.clone()).collect()),
        )
    }

    /// Whether an event about `document` is seen.
    pub fn sees(&self, document: Option<&str>) -> bool {
        match &self.0 {
            None => true,
            Some(slugs) => document.is_some_and(|d| slugs.iter().any(|s| s.as_str() == d)),
        }
    }

    /// The documents seen, when restricted.
    pub fn documents(&self) -> Option<Vec<String>> {
        self.0.as_ref().map(|slugs| slugs.iter().map(Slug::to_string).collect())
    }
}

/// Checks that `doc` applies to `audience` (when a request is restricted to one).
pub fn within(doc: &DocumentInfo, audience: Option<&Audience>) -> Result<(), Refusal> {
    match audience {
        Some(a) if !doc.applies_to(Some(a)) => {
            Err(Refusal::OtherAudience { slug: doc.slug.clone(), audience: a.clone() })
        }
        _ => Ok(()),
    }
}

/// Checks that `version` of `slug` may be accepted or declined at `now` (the current version or
/// a newer one), and returns what an acceptance covers: that version and the newest published
/// version of each of the agreement's parts.
pub fn decidable<'a>(
    catalog: &'a Catalog,
    slug: &str,
    version: u32,
    now: DateTime<Utc>,
) -> Result<(&'a DocumentInfo, Vec<Covered>), Refusal> {
    let doc = agreement(catalog, slug)?;
    let chosen = VersionNumber::new(version)
        .and_then(|n| doc.version(n))
        .ok_or_else(|| Refusal::UnknownVersion { slug: doc.slug.clone(), version })?;
    if let Some(current) = doc.current(now)
        && chosen.number < current.number
    {
        return Err(Refusal::Superseded { slug: doc.slug.clone(), version: chosen.number, current: current.number });
    }
    let mut covers =
        vec![Covered { document: doc.slug.clone(), version: chosen.number, sha256: chosen.sha256.clone() }];
    for part in catalog.parts_of(&doc.slug) {
        if let Some(newest) = part.latest() {
            covers.push(Covered { document: part.slug.clone(), version: newest.number, sha256: newest.sha256.clone() });
        }
    }
    Ok((doc, covers))
}

/// The agreement named `slug`: published, required, and not a part of another.
pub fn agreement<'a>(catalog: &'a Catalog, slug: &str) -> Result<&'a DocumentInfo, Refusal> {
    let doc = Slug::parse(slug)
        .ok()
        .and_then(|s| catalog.document(&s))
        .ok_or_else(|| Refusal::UnknownDocument(slug.to_owned()))?;
    if doc.acceptance() == Acceptance::Informational {
        return Err(Refusal::Informational(doc.slug.clone()));
    }
    if let Some(parent) = doc.part_of() {
        return Err(Refusal::PartOf { part: doc.slug.clone(), agreement: parent.clone() });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap()
    }

    fn v(n: u32, effective: u32, material: bool) -> VersionInfo {
        VersionInfo {
            number: VersionNumber::new(n).unwrap(),
            title: format!("v{n}"),
            effective: day(effective),
            material,
            summary: None,
            part_of: None,
            acceptance: Acceptance::Required,
            audiences: Vec::new(),
            reaccept_after: None,
            sha256: format!("sha-{n}"),
            published_at: day(1),
            locales: Vec::new(),
        }
    }

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    fn n(x: u32) -> VersionNumber {
        VersionNumber::new(x).unwrap()
    }

    /// terms: v1 (day 1), v2 editorial (day 5), v3 material (day 10), v4 upcoming (day 20).
    /// privacy, part of terms: v1 (day 1), v2 material (day 12).
    /// cookies: informational.
    fn catalog() -> Catalog {
        let mut privacy = vec![v(1, 1, true), v(2, 12, true)];
        for p in &mut privacy {
            p.part_of = Some(slug("terms"));
        }
        let mut cookies = vec![v(1, 1, true)];
        cookies[0].acceptance = Acceptance::Informational;
        Catalog {
            documents: vec![
                DocumentInfo { slug: slug("cookies"), versions: cookies },
                DocumentInfo { slug: slug("privacy"), versions: privacy },
                DocumentInfo {
                    slug: slug("terms"),
                    versions: vec![v(1, 1, true), v(2, 5, false), v(3, 10, true), v(4, 20, true)],
                },
            ],
        }
    }

    fn accepted(terms: u32, privacy: u32) -> HashMap<Slug, Decision> {
        HashMap::from([(
            slug("terms"),
            Decision::Accepted {
                version: n(terms),
                covers: vec![
                    Covered { document: slug("terms"), version: n(terms), sha256: String::new() },
                    Covered { document: slug("privacy"), version: n(privacy), sha256: String::new() },
                ],
                at: day(1),
            },
        )])
    }

    fn only(statuses: Vec<DocumentStatus>) -> DocumentStatus {
        assert_eq!(statuses.len(), 1, "only `terms` is an agreement: {statuses:?}");
        statuses.into_iter().next().unwrap()
    }

    #[test]
    fn only_required_top_level_documents_are_agreements() {
        let names: Vec<String> = agreements(&catalog()).map(|d| d.slug.to_string()).collect();
        assert_eq!(names, vec!["terms"]);
    }

    #[test]
    fn current_and_upcoming_follow_the_clock() {
        let s = only(status(&catalog(), &HashMap::new(), None, day(15)));
        assert_eq!(s.current_version, Some(n(3)));
        assert_eq!(s.upcoming_version, Some(n(4)));
    }

    #[test]
    fn never_accepted_is_never_and_required_since_the_baseline() {
        let s = only(status(&catalog(), &HashMap::new(), None, day(15)));
        assert_eq!(s.state, State::Never);
        assert_eq!(s.required_since, Some(day(12)), "the part's material v2 is the newest requirement");
        assert!(!s.satisfied());
    }

    #[test]
    fn accepting_the_newest_material_versions_is_up_to_date() {
        let s = only(status(&catalog(), &accepted(3, 2), None, day(15)));
        assert_eq!(s.state, State::Accepted);
        assert_eq!(s.accepted_version, Some(n(3)));
        assert_eq!(s.required_since, None);
        assert!(s.satisfied());
    }

    #[test]
    fn an_editorial_version_re_prompts_nobody() {
        // On day 7, v2 (editorial) is current; v1's acceptance still stands.
        let s = only(status(&catalog(), &accepted(1, 1), None, day(7)));
        assert_eq!(s.current_version, Some(n(2)));
        assert_eq!(s.state, State::Accepted);
    }

    #[test]
    fn a_material_version_makes_older_acceptances_pending() {
        let s = only(status(&catalog(), &accepted(2, 1), None, day(11)));
        assert_eq!(s.state, State::Pending);
        assert_eq!(s.accepted_version, Some(n(2)));
        assert_eq!(s.required_since, Some(day(10)));
    }

    #[test]
    fn a_material_change_in_a_part_re_prompts_its_agreement() {
        let s = only(status(&catalog(), &accepted(3, 1), None, day(15)));
        assert_eq!(s.state, State::Pending);
        assert_eq!(s.required_since, Some(day(12)));
        let before = only(status(&catalog(), &accepted(3, 1), None, day(11)));
        assert_eq!(before.state, State::Accepted, "the part's v2 is not in effect yet");
    }

    #[test]
    fn a_part_missing_from_the_acceptance_is_pending() {
        let decisions = HashMap::from([(
            slug("terms"),
            Decision::Accepted {
                version: n(3),
                covers: vec![Covered { document: slug("terms"), version: n(3), sha256: String::new() }],
                at: day(1),
            },
        )]);
        assert_eq!(only(status(&catalog(), &decisions, None, day(15))).state, State::Pending);
    }

    #[test]
    fn an_accepted_upcoming_version_counts_once_it_takes_effect() {
        let s = only(status(&catalog(), &accepted(4, 2), None, day(25)));
        assert_eq!(s.state, State::Accepted);
        let early = only(status(&catalog(), &accepted(4, 2), None, day(15)));
        assert_eq!(early.state, State::Accepted, "accepting early covers the current version too");
    }

    #[test]
    fn declined_and_withdrawn_are_not_up_to_date() {
        let declined = HashMap::from([(slug("terms"), Decision::Declined)]);
        let s = only(status(&catalog(), &declined, None, day(15)));
        assert_eq!(s.state, State::Declined);
        assert!(!s.satisfied());
        let withdrawn = HashMap::from([(slug("terms"), Decision::Withdrawn)]);
        let s = only(status(&catalog(), &withdrawn, None, day(15)));
        assert_eq!(s.state, State::Withdrawn);
        assert_eq!(s.accepted_version, None);
    }

    #[test]
    fn nothing_in_effect_requires_nothing() {
        let s = only(status(&catalog(), &HashMap::new(), None, Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()));
        assert_eq!(s.state, State::Never);
        assert_eq!(s.required_since, None);
        assert!(s.satisfied());
    }

    #[test]
    fn an_acceptance_older_than_reaccept_after_expires_when_nothing_else_is_owed() {
        let mut c = catalog();
        let terms = c.documents.iter_mut().find(|d| d.slug.as_str() == "terms").unwrap();
        for v in &mut terms.versions {
            v.reaccept_after = TimeDelta::try_days(10);
        }
        // Accepted on day 1 (see `accepted`): on day 11 it is exactly 10 days old.
        let s = only(status(&c, &accepted(4, 2), None, day(11)));
        assert_eq!(s.state, State::Expired);
        assert_eq!(s.required_since, Some(day(11)), "required since the moment it expired");
        assert_eq!(s.accepted_version, Some(n(4)));
        assert!(!s.satisfied());
        assert_eq!(only(status(&c, &accepted(4, 2), None, day(10))).state, State::Accepted);
        // Behind a material version as well: pending, since that version.
        let s = only(status(&c, &accepted(2, 1), None, day(15)));
        assert_eq!((s.state, s.required_since), (State::Pending, Some(day(12))));
    }

    #[test]
    fn the_shortest_period_of_an_agreement_and_its_parts_applies() {
        let mut c = catalog();
        for d in &mut c.documents {
            let days = if d.slug.as_str() == "privacy" { 3 } else { 30 };
            for v in &mut d.versions {
                v.reaccept_after = TimeDelta::try_days(days);
            }
        }
        let terms = c.document(&slug("terms")).unwrap();
        assert_eq!(reaccept_after(&c, terms, day(15)), TimeDelta::try_days(3));
    }

    #[test]
    fn audiences_restrict_the_agreements_and_must_be_named_by_a_document() {
        let mut c = catalog();
        c.documents.push(DocumentInfo { slug: slug("sdk"), versions: vec![v(1, 1, true)] });
        let sdk = Audience::parse("sdk-users").unwrap();
        c.documents.last_mut().unwrap().versions[0].audiences = vec![sdk.clone()];
        let names = |a: Option<&Audience>| agreements_for(&c, a).map(|d| d.slug.to_string()).collect::<Vec<_>>();
        assert_eq!(names(None), ["terms", "sdk"]);
        assert_eq!(names(Some(&sdk)), ["terms", "sdk"], "terms names no audience: it applies to everyone");
        assert_eq!(audience_for(&c, None, Some("sdk-users")), Ok(Some(sdk.clone())));
        assert_eq!(audience_for(&c, Some(&sdk), None), Ok(Some(sdk.clone())), "a bound key's own");
        assert!(matches!(audience_for(&c, None, Some("developers")), Err(AudienceError::Unknown(..))));
        assert!(matches!(audience_for(&c, None, Some("Not A Name")), Err(AudienceError::Invalid(_))));
        let dev = Audience::parse("developers").unwrap();
        assert!(matches!(audience_for(&c, Some(&dev), Some("sdk-users")), Err(AudienceError::OtherThanKeys { .. })));
        let sdk_doc = c.document(&slug("sdk")).unwrap();
        assert!(within(sdk_doc, Some(&sdk)).is_ok());
        assert!(matches!(within(sdk_doc, Some(&dev)), Err(Refusal::OtherAudience { .. })));
    }

    #[test]
    fn current_and_upcoming_versions_can_be_decided_older_ones_cannot() {
        let c = catalog();
        let (_, covers) = decidable(&c, "terms", 3, day(15)).unwrap();
        assert_eq!(covers.len(), 2);
        assert_eq!(covers[1], Covered { document: slug("privacy"), version: n(2), sha256: "sha-2".into() });
        assert!(decidable(&c, "terms", 4, day(15)).is_ok(), "an upcoming version can be accepted early");
        assert_eq!(
            decidable(&c, "terms", 2, day(15)).unwrap_err(),
            Refusal::Superseded { slug: slug("terms"), version: n(2), current: n(3) }
        );
        assert!(matches!(decidable(&c, "terms", 9, day(15)), Err(Refusal::UnknownVersion { .. })));
        assert!(matches!(decidable(&c, "terms", 0, day(15)), Err(Refusal::UnknownVersion { .. })));
        assert!(matches!(decidable(&c, "nope", 1, day(15)), Err(Refusal::UnknownDocument(_))));
        assert!(matches!(decidable(&c, "cookies", 1, day(15)), Err(Refusal::Informational(_))));
        assert!(matches!(decidable(&c, "privacy", 2, day(15)), Err(Refusal::PartOf { .. })));
    }
}
