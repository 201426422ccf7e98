//! The published catalog: every document with the metadata of its versions, and the rules for
//! which version is current or upcoming at a given time. Built from stored rows by `db`.

use chrono::{DateTime, Utc};

use super::{Acceptance, Audience, Locale, Slug, VersionNumber};

/// Metadata of one published version (its original-language file).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub number: VersionNumber,
    pub title: String,
    pub effective: DateTime<Utc>,
    pub material: bool,
    pub summary: Option<String>,
    pub part_of: Option<Slug>,
    pub acceptance: Acceptance,
    /// The audiences it applies to, sorted; empty: everyone.
    pub audiences: Vec<Audience>,
    /// How long an acceptance counts (`reaccept_after`); `None`: until a material change.
    pub reaccept_after: Option<chrono::TimeDelta>,
    pub sha256: String,
    pub published_at: DateTime<Utc>,
    /// Translations published for this version, sorted.
    pub locales: Vec<Locale>,
}

/// A published document and its versions, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentInfo {
    pub slug: Slug,
    pub versions: Vec<VersionInfo>,
}

impl DocumentInfo {
    /// The newest version in effect at `now`.
    pub fn current(&self, now: DateTime<Utc>) -> Option<&VersionInfo> {
        self.versions.iter().rev().find(|v| v.effective <= now)
    }

    /// The newest version that takes effect after `now`.
    pub fn upcoming(&self, now: DateTime<Utc>) -> Option<&VersionInfo> {
        self.versions.last().filter(|v| v.effective > now)
    }

    /// The newest published version; document-wide settings (`part_of`, `acceptance`) follow it.
    pub fn latest(&self) -> Option<&VersionInfo> {
        self.versions.last()
    }

    pub fn version(&self, number: VersionNumber) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.number == number)
    }

    /// The version a reader sees by default: the current one, or the first upcoming one when
    /// nothing is in effect yet.
    pub fn shown(&self, now: DateTime<Utc>) -> Option<&VersionInfo> {
        self.current(now).or_else(|| self.versions.first())
    }

    pub fn title(&self, now: DateTime<Utc>) -> &str {
        self.shown(now).map_or(self.slug.as_str(), |v| v.title.as_str())
    }

    pub fn acceptance(&self) -> Acceptance {
        self.latest().map_or(Acceptance::Required, |v| v.acceptance)
    }

    pub fn part_of(&self) -> Option<&Slug> {
        self.latest().and_then(|v| v.part_of.as_ref())
    }

    /// The audiences the document applies to (empty: everyone); follows the newest version.
    pub fn audiences(&self) -> &[Audience] {
        self.latest().map_or(&[], |v| v.audiences.as_slice())
    }

    /// Whether the document applies to subjects asked about for `audience` (`None`: asked
    /// about every document).
    pub fn applies_to(&self, audience: Option<&Audience>) -> bool {
        audience.is_none_or(|a| self.audiences().is_empty() || self.audiences().contains(a))
    }
}

/// Every published document, sorted by slug.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub documents: Vec<DocumentInfo>,
}

impl Catalog {
    pub fn document(&self, slug: &Slug) -> Option<&DocumentInfo> {
        self.documents.iter().find(|d| &d.slug == slug)
    }

    /// Documents that are an integral part of `slug`.
    pub fn parts_of<'a>(&'a self, slug: &'a Slug) -> impl Iterator<Item = &'a DocumentInfo> + 'a {
        self.documents.iter().filter(move |d| d.part_of() == Some(slug))
    }

    /// Whether any document names `audience`.
    pub fn knows_audience(&self, audience: &Audience) -> bool {
        self.documents.iter().any(|d| d.audiences().contains(audience))
    }

    /// Every audience some document names, sorted.
    pub fn audiences(&self) -> Vec<&Audience> {
        let mut all: Vec<&Audience> = self.documents.iter().flat_map(|d| d.audiences()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Every published version of every document, newest effective date first.
    pub fn newest_first(&self) -> Vec<(&DocumentInfo, &VersionInfo)> {
        let mut all: Vec<_> = self.documents.iter().flat_map(|d| d.versions.iter().map(move |v| (d, v))).collect();
        all.sort_by(|a, b| {
            b.1.effective
                .cmp(&a.1.effective)
                .then_with(|| b.1.published_at.cmp(&a.1.published_at))
                .then_with(|| a.0.slug.cmp(&b.0.slug))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn version(n: u32, effective: DateTime<Utc>) -> VersionInfo {
        VersionInfo {
            number: VersionNumber::new(n).unwrap(),
            title: format!("Title {n}"),
            effective,
            material: true,
            summary: None,
            part_of: None,
            acceptance: Acceptance::Required,
            audiences: Vec::new(),
            reaccept_after: None,
            sha256: String::new(),
            published_at: effective,
            locales: Vec::new(),
        }
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn current_is_newest_in_effect_and_upcoming_is_newest_in_future() {
        let doc = DocumentInfo {
            slug: Slug::parse("terms").unwrap(),
            versions: vec![version(1, day(1)), version(2, day(10)), version(3, day(20))],
        };
        assert_eq!(doc.current(day(15)).map(|v| v.number.get()), Some(2));
        assert_eq!(doc.upcoming(day(15)).map(|v| v.number.get()), Some(3));
        assert_eq!(doc.current(day(20)).map(|v| v.number.get()), Some(3));
        assert_eq!(doc.upcoming(day(20)), None);
        assert_eq!(doc.current(day(1)).map(|v| v.number.get()), Some(1));
    }

    #[test]
    fn a_document_not_yet_in_effect_shows_its_first_version() {
        let doc = DocumentInfo { slug: Slug::parse("terms").unwrap(), versions: vec![version(1, day(10))] };
        assert_eq!(doc.current(day(5)), None);
        assert_eq!(doc.shown(day(5)).map(|v| v.number.get()), Some(1));
        assert_eq!(doc.title(day(5)), "Title 1");
    }
}
