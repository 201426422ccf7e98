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

use super::PageError;
use crate::domain::{Catalog, sha256_hex};

/// Most pages kept, and most bytes (all their forms): every version and language of a large
/// catalog fits; past either, the cache starts again.
const MAX_PAGES: usize = 4_096;
pub const MAX_BYTES: usize = 8 << 20;

/// How hard Brotli works: at its best for the pages of versions (a bounded set, drawn once per
/// publication), less for diff pages, whose pairs a client chooses.
#[derive(Clone, Copy)]
pub enum Effort {
    Best,
    Quick,
}

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
    pub fn new(html: String, cache_control: &'static str, effort: Effort) -> Self {
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
            // A window no larger than the page (Brotli's tables grow with it).
            let lgwin = (usize::BITS - identity.len().leading_zeros()).clamp(16, 22) as i32;
            let quality = match effort {
                Effort::Best => 11,
                Effort::Quick => 5,
            };
            let params =
                brotli::enc::BrotliEncoderParams { quality, lgwin, size_hint: identity.len(), ..Default::default() };
            let done = brotli::BrotliCompress(&mut identity.as_ref(), &mut out, &params);
            done.map(|_| Bytes::from(out)).unwrap_or_default()
        };
        Self { identity, gzip, brotli, etag: format!("\"{}\"", &digest[..32]), cache_control }
    }

    /// [`Self::new`] off the request threads (Brotli at its best takes a while).
    pub async fn draw(html: String, cache_control: &'static str, effort: Effort) -> Result<Self, PageError> {
        tokio::task::spawn_blocking(move || Self::new(html, cache_control, effort))
            .await
            .map_err(|e| PageError::from(crate::db::DbError::Task(format!("drawing a page: {e}"))))
    }

    /// The bytes kept for this page, in all its forms.
    fn size(&self) -> usize {
        self.identity.len() + self.gzip.len() + self.brotli.len()
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
    /// encoding: the answer then carries the tag that matched), else the page in the best
    /// encoding the request accepts.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let coding = self.coding_for(req);
        let tags = [Coding::Identity, Coding::Gzip, Coding::Brotli].map(|c| self.etag_of(c));
        let matched = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|list| list.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .find_map(
                |t| if t == "*" { Some(self.etag_of(coding)) } else { tags.iter().find(|tag| *tag == t).cloned() },
            );
        let status = if matched.is_some() { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
        let mut answer = HttpResponse::build(status);
        answer
            .insert_header((header::ETAG, matched.clone().unwrap_or_else(|| self.etag_of(coding))))
            .insert_header((header::CACHE_CONTROL, self.cache_control))
            .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding, Accept-Language")));
        if matched.is_some() {
            return answer.finish();
        }
        answer.content_type("text/html; charset=utf-8");
        // An encoded form carries `Content-Encoding`, which also keeps the compressing
        // middleware off it; the plain form is left to it (a client that takes only deflate).
        let body = match coding {
            Coding::Identity => self.identity.clone(),
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

/// A page being drawn or drawn: requests that miss it together wait for one drawing.
type Slot = Arc<tokio::sync::OnceCell<Arc<Prebuilt>>>;

/// A page, and the catalog it was drawn from.
struct Entry {
    drawn_from: Arc<Catalog>,
    slot: Slot,
}

#[derive(Default)]
struct Pages {
    entries: HashMap<String, Entry>,
    bytes: usize,
}

/// The pages drawn so far.
#[derive(Default)]
pub struct PageCache {
    pages: Mutex<Pages>,
}

impl PageCache {
    /// The page kept under `key`, drawn by `draw` first if it was not drawn from `catalog`: the
    /// same one, or one that holds the same (a reload that found nothing new, as after a key
    /// was revoked). One drawing per page at a time.
    pub async fn get_or_draw<F, Fut>(
        &self,
        key: String,
        catalog: &Arc<Catalog>,
        draw: F,
    ) -> Result<Arc<Prebuilt>, PageError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Prebuilt, PageError>>,
    {
        let kept =
            self.pages.lock().ok().and_then(|p| p.entries.get(&key).map(|e| (e.drawn_from.clone(), e.slot.clone())));
        // Compared outside the lock: after a reload, once per page, by value.
        let slot = match kept {
            Some((drawn_from, slot)) if Arc::ptr_eq(&drawn_from, catalog) => Some(slot),
            Some((drawn_from, slot)) if *drawn_from == **catalog => {
                if let Ok(mut pages) = self.pages.lock()
                    && let Some(entry) = pages.entries.get_mut(&key)
                {
                    entry.drawn_from = catalog.clone();
                }
                Some(slot)
            }
            _ => None,
        };
        let (slot, new) = match slot {
            Some(slot) => (slot, false),
            None => {
                let slot = Slot::default();
                if let Ok(mut pages) = self.pages.lock() {
                    if pages.entries.len() >= MAX_PAGES || pages.bytes >= MAX_BYTES {
                        pages.entries.clear();
                        pages.bytes = 0;
                    }
                    pages.entries.insert(key, Entry { drawn_from: catalog.clone(), slot: slot.clone() });
                }
                (slot, true)
            }
        };
        let page = slot.get_or_try_init(|| async { draw().await.map(Arc::new) }).await?.clone();
        if new && let Ok(mut pages) = self.pages.lock() {
            pages.bytes += page.size();
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn page() -> Prebuilt {
        Prebuilt::new("<p>".repeat(500), CHANGING, Effort::Best)
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
        // The 304 carries the tag that matched, whichever encoding would be chosen now.
        let gz = p.etag_of(Coding::Gzip);
        let req = TestRequest::default()
            .insert_header(("if-none-match", gz.as_str()))
            .insert_header(("accept-encoding", "br"))
            .to_http_request();
        let answer = p.respond(&req);
        assert_eq!(answer.headers().get("etag").and_then(|v| v.to_str().ok()), Some(gz.as_str()));
    }
}
