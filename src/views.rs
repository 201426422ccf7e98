//! How values look to people and programs, shared by every front end (pages, API, CLI): dates
//! for reading, RFC 3339 for machines, and the layout of a redline.

use chrono::{DateTime, Timelike, Utc};

use crate::render::SafeHtml;
use crate::render::diff::{Change, DiffBlock};

/// `1 December 2026`, or `1 December 2026, 09:30 UTC` when the time is not midnight.
pub fn human_time(t: DateTime<Utc>) -> String {
    if t.hour() == 0 && t.minute() == 0 && t.second() == 0 {
        t.format("%-d %B %Y").to_string()
    } else {
        t.format("%-d %B %Y, %H:%M UTC").to_string()
    }
}

/// RFC 3339 in UTC with a `Z`, as the contract promises.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub struct SectionLink {
    pub text: String,
    pub href: String,
}

/// One thing on the page: a change, a block of context, or a folded unchanged stretch.
pub struct Item {
    /// `change`, `context` or `fold`.
    pub kind: &'static str,
    /// For changes: `changed`, `inserted` or `deleted`.
    pub change: &'static str,
    pub id: String,
    pub count: usize,
    pub html: SafeHtml,
    pub old_html: SafeHtml,
    pub new_html: SafeHtml,
}

/// Blocks shown around each change.
const CONTEXT: usize = 1;

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Unchanged => "unchanged",
        Change::Changed => "changed",
        Change::Inserted => "inserted",
        Change::Deleted => "deleted",
    }
}

/// Lays the blocks out: every change, a little context around it, and the rest folded.
pub fn layout(blocks: &[DiffBlock]) -> (Vec<Item>, Vec<SectionLink>) {
    let changed: Vec<usize> = (0..blocks.len()).filter(|&i| blocks[i].change != Change::Unchanged).collect();
    let near = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= CONTEXT);
    let mut items = Vec::new();
    let mut sections: Vec<SectionLink> = Vec::new();
    let mut fold: Vec<&DiffBlock> = Vec::new();
    let flush = |fold: &mut Vec<&DiffBlock>, items: &mut Vec<Item>| {
        if fold.is_empty() {
            return;
        }
        let html = SafeHtml::concat(fold.iter().map(|b| &b.html));
        items.push(Item {
            kind: "fold",
            change: "",
            id: String::new(),
            count: fold.len(),
            old_html: SafeHtml::default(),
            new_html: SafeHtml::default(),
            html,
        });
        fold.clear();
    };
    let mut n = 0;
    for (i, b) in blocks.iter().enumerate() {
        if b.change == Change::Unchanged {
            if near(i) {
                flush(&mut fold, &mut items);
                items.push(Item {
                    kind: "context",
                    change: "",
                    id: String::new(),
                    count: 1,
                    html: b.html.clone(),
                    old_html: b.html.clone(),
                    new_html: b.html.clone(),
                });
            } else {
                fold.push(b);
            }
            continue;
        }
        flush(&mut fold, &mut items);
        n += 1;
        let id = format!("change-{n}");
        let section = b.section.clone().unwrap_or_else(|| "Opening text".to_owned());
        if sections.last().is_none_or(|s| s.text != section) {
            sections.push(SectionLink { text: section, href: format!("#{id}") });
        }
        items.push(Item {
            kind: "change",
            change: change_name(b.change),
            id,
            count: 1,
            html: b.html.clone(),
            old_html: b.old_html.clone(),
            new_html: b.new_html.clone(),
        });
    }
    flush(&mut fold, &mut items);
    (items, sections)
}
