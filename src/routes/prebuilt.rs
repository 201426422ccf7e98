//! Pages served as pre-built bytes: a policy's current page, its version pages and its diff
//! pages are drawn once per state of the catalog and kept, with their gzip and Brotli forms
//! and a strong `ETag`, so that a page view is a map lookup and a copy, as for a static file.
//!
//! A page is kept under what it is of (the route, the versions, the language, the view) with
//! the catalog it was drawn from: a catalog that holds something else (a publication anywhere,
//! see [`crate::freshness`]) draws it again on its next view. What a page says about time (which
//! version is current, which is upcoming) is part of its key, so a version taking effect draws
//! it again too.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use crate::domain::{Catalog, sha256_hex};

/// Most pages kept (every version × language × view of a large catalog fits; past it the
/// cache starts again).
const MAX_PAGES: usize = 4_096;

/// How long a browser or a proxy may keep a page that can still change (the current page, a
/// version not yet superseded, a diff); it then asks again with `If-None-Match`.
pub const CHANGING: &str = "public, max-age=60";
/// A page that no publication and no date can change any more: a superseded version.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One page in every encoding it is served in.
pub struct Prebuilt {
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    /// The strong validator of the identity form, quoted; the encoded forms add `-gz`, `-br`.
    etag: String,
    cache_control: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Prebuilt {
    /// Draws the encoded forms of `html`, once.
    pub fn new(html: String, cache_control: &'static str) -> Self {
        let identity = Bytes::from(html);
        let digest = sha256_hex(&identity);
        let gzip = {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            // Writing to a Vec cannot fail; should it, the page is served unencoded.
            let done = encoder.write_all(&identity).and_then(|()| encoder.finish());
            done.map(Bytes::from).unwrap_or_default()
        };
        let brotli = {
            let mut out = Vec::new();
            let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
            let done = brotli::BrotliCompress(&mut identity.as_ref(), &mut out, &params);
            done.map(|_| Bytes::from(out)).unwrap_or_default()
        };
        Self { identity, gzip, brotli, etag: format!("\"{}\"", &digest[..32]), cache_control }
    }

    fn etag_of(&self, coding: Coding) -> String {
        let base = self.etag.trim_end_matches('"');
        match coding {
            Coding::Identity => self.etag.clone(),
            Coding::Gzip => format!("{base}-gz\""),
            Coding::Brotli => format!("{base}-br\""),
        }
    }

    /// The best encoding the request accepts that was built: Brotli, then gzip, else none.
    fn coding_for(&self, req: &HttpRequest) -> Coding {
        let accept = req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        let accepts = |name: &str| {
            accept.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let coding = parts.next().unwrap_or("");
                let refused = parts
                    .any(|p| p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)));
                coding.eq_ignore_ascii_case(name) && !refused
            })
        };
        if accepts("br") && !self.brotli.is_empty() {
            Coding::Brotli
        } else if accepts("gzip") && !self.gzip.is_empty() {
            Coding::Gzip
        } else {
            Coding::Identity
        }
    }

    /// The page as an answer to `req`: `304` when its `If-None-Match` names this page (in any
    /// encoding), else the page in the best encoding the request accepts.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let coding = self.coding_for(req);
        let etag = self.etag_of(coding);
        let matched = req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v| v.to_str().ok()).any(|list| {
            list.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| {
                t == "*" || [Coding::Identity, Coding::Gzip, Coding::Brotli].iter().any(|c| t == self.etag_of(*c))
            })
        });
        let mut answer = HttpResponse::build(if matched { StatusCode::NOT_MODIFIED } else { StatusCode::OK });
        answer
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, self.cache_control))
            .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding, Accept-Language")));
        if matched {
            return answer.finish();
        }
        answer.content_type("text/html; charset=utf-8");
        let body = match coding {
            Coding::Identity => {
                // Already as small as it gets here: the compressing middleware must not try.
                answer.insert_header((header::CONTENT_ENCODING, "identity"));
                self.identity.clone()
            }
            Coding::Gzip => {
                answer.insert_header((header::CONTENT_ENCODING, "gzip"));
                self.gzip.clone()
            }
            Coding::Brotli => {
                answer.insert_header((header::CONTENT_ENCODING, "br"));
                self.brotli.clone()
            }
        };
        answer.body(body)
    }
}

/// A page, and the catalog it was drawn from.
type Drawn = (Arc<Catalog>, Arc<Prebuilt>);

/// The pages drawn so far.
#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<String, Drawn>>,
}

impl PageCache {
    /// The page kept under `key` if it was drawn from `catalog`: the same one, or one that
    /// holds the same (a reload that found nothing new, as after a key was revoked).
    pub fn get(&self, key: &str, catalog: &Arc<Catalog>) -> Option<Arc<Prebuilt>> {
        let mut pages = self.pages.lock().ok()?;
        let (drawn_from, page) = pages.get_mut(key)?;
        if !Arc::ptr_eq(drawn_from, catalog) {
            if **drawn_from != **catalog {
                return None;
            }
            *drawn_from = catalog.clone();
        }
        Some(page.clone())
    }

    /// Keeps `page`, drawn from `catalog`, under `key`.
    pub fn keep(&self, key: String, catalog: &Arc<Catalog>, page: Arc<Prebuilt>) {
        if let Ok(mut pages) = self.pages.lock() {
            if pages.len() >= MAX_PAGES && !pages.contains_key(&key) {
                pages.clear();
            }
            pages.insert(key, (catalog.clone(), page));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn page() -> Prebuilt {
        Prebuilt::new("<p>".repeat(500), CHANGING)
    }

    #[test]
    fn the_best_accepted_encoding_is_chosen() {
        let p = page();
        let with = |accept: &str| {
            p.coding_for(&TestRequest::default().insert_header(("accept-encoding", accept)).to_http_request())
        };
        assert_eq!(with("gzip, deflate, br"), Coding::Brotli);
        assert_eq!(with("gzip"), Coding::Gzip);
        assert_eq!(with("br;q=0, gzip;q=0.5"), Coding::Gzip);
        assert_eq!(with("identity"), Coding::Identity);
        assert_eq!(p.coding_for(&TestRequest::default().to_http_request()), Coding::Identity);
        assert!(p.brotli.len() < p.gzip.len() && p.gzip.len() < p.identity.len());
    }

    #[test]
    fn a_known_etag_is_answered_304_in_any_encoding() {
        let p = page();
        for coding in [Coding::Identity, Coding::Gzip, Coding::Brotli] {
            let req = TestRequest::default().insert_header(("if-none-match", p.etag_of(coding))).to_http_request();
            assert_eq!(p.respond(&req).status(), StatusCode::NOT_MODIFIED, "{coding:?}");
        }
        let other = TestRequest::default().insert_header(("if-none-match", "\"nope\"")).to_http_request();
        assert_eq!(p.respond(&other).status(), StatusCode::OK);
    }
}
