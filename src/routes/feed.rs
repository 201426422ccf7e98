//! `GET /feed.atom`: every published version, newest first, for people and tools that watch
//! for policy changes.

use actix_web::{HttpRequest, HttpResponse, web};
use atom_syndication::{EntryBuilder, FeedBuilder, FixedDateTime, LinkBuilder, Text};
use chrono::Utc;

use super::{AppState, PageError};
use crate::views::human_time;

fn fixed(t: chrono::DateTime<Utc>) -> FixedDateTime {
    t.fixed_offset()
}

pub async fn atom(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let catalog = state.catalog.get(&state.db).await?;
    let base = super::base_url(&state, &req);
    let entries: Vec<_> = catalog
        .newest_first()
        .into_iter()
        .map(|(doc, v)| {
            let url = format!("{base}/policies/{}/versions/{}", doc.slug, v.number);
            let kind = if v.number.get() == 1 {
                "First version"
            } else if v.material {
                "Material change"
            } else {
                "Editorial change"
            };
            let summary = match &v.summary {
                Some(s) => format!("{kind}, effective {}: {s}", human_time(v.effective)),
                None => format!("{kind}, effective {}.", human_time(v.effective)),
            };
            EntryBuilder::default()
                .id(format!("{url}#sha256={}", v.sha256))
                .title(Text::plain(format!("{} — version {}", v.title, v.number)))
                .updated(fixed(v.effective.max(v.published_at)))
                .published(Some(fixed(v.published_at)))
                .summary(Some(Text::plain(summary)))
                .links(vec![
                    LinkBuilder::default().href(url).rel("alternate").mime_type(Some("text/html".into())).build(),
                ])
                .build()
        })
        .collect();
    let updated =
        catalog.documents.iter().flat_map(|d| d.versions.iter().map(|v| v.published_at)).max().unwrap_or_else(Utc::now);
    let feed = FeedBuilder::default()
        .id(format!("{base}/feed.atom"))
        .title(Text::plain("Policy updates"))
        .updated(fixed(updated))
        .links(vec![
            LinkBuilder::default().href(format!("{base}/feed.atom")).rel("self").build(),
            LinkBuilder::default().href(format!("{base}/")).rel("alternate").build(),
        ])
        .entries(entries)
        .build();
    let mut resp = HttpResponse::Ok();
    resp.content_type("application/atom+xml; charset=utf-8").insert_header(("Cache-Control", "public, max-age=300"));
    if state.settings.public_url.is_none() {
        // Its links are built on where the request was sent.
        resp.insert_header(("Vary", "Host, Forwarded, X-Forwarded-Host, X-Forwarded-Proto"));
    }
    Ok(resp.body(feed.to_string()))
}
