//! Finding a document and a version from raw path segments, shared by pages and the API.

use crate::domain::{Catalog, DocumentInfo, Slug, VersionInfo, VersionNumber, VersionParam};

use super::{ApiError, PageError};

pub enum LookupError {
    NoDocument(String),
    BadVersion(String),
    NoVersion(String),
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NoDocument(m) | LookupError::NoVersion(m) => ApiError::not_found(m),
            LookupError::BadVersion(m) => ApiError::bad_request(m),
        }
    }
}

impl From<LookupError> for PageError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NoDocument(m) | LookupError::NoVersion(m) => PageError::not_found(m),
            LookupError::BadVersion(m) => PageError::bad_request(m),
        }
    }
}

pub fn document<'a>(catalog: &'a Catalog, raw: &str) -> Result<&'a DocumentInfo, LookupError> {
    Slug::parse(raw)
        .ok()
        .and_then(|slug| catalog.document(&slug))
        .ok_or_else(|| LookupError::NoDocument(format!("no published document `{raw}`")))
}

pub fn version<'a>(doc: &'a DocumentInfo, raw: &str) -> Result<&'a VersionInfo, LookupError> {
    let missing = || {
        LookupError::NoVersion(format!(
            "`{}` has no version {raw}; its versions are 1 to {}",
            doc.slug,
            doc.versions.len()
        ))
    };
    match VersionNumber::parse_param(raw).map_err(|e| LookupError::BadVersion(e.to_string()))? {
        VersionParam::Number(n) => doc.version(n).ok_or_else(missing),
        VersionParam::NoSuchVersion => Err(missing()),
    }
}
