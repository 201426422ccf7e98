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

/// A period as people say it: `a year`, `2 years`, `6 weeks`, `30 days`, `12 hours`,
/// `90 minutes`, `45 seconds` (the largest unit it is a whole number of).
pub fn human_period(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let units = [
        (31_557_600, "a year", "years"), // 365.25 days, as `1y` means
        (365 * 86_400, "a year", "years"),
        (7 * 86_400, "a week", "weeks"),
        (86_400, "a day", "days"),
        (3_600, "an hour", "hours"),
        (60, "a minute", "minutes"),
        (1, "a second", "seconds"),
    ];
    for (size, one, many) in units {
        if s >= size && s % size == 0 {
            return if s == size { one.to_owned() } else { format!("{} {many}", s / size) };
        }
    }
    format!("{s} seconds")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_people_say_them() {
        let d = |s| chrono::TimeDelta::try_seconds(s).unwrap_or_default();
        assert_eq!(human_period(d(365 * 86_400)), "a year");
        assert_eq!(human_period(d(2 * 365 * 86_400)), "2 years");
        assert_eq!(human_period(d(52 * 7 * 86_400)), "52 weeks");
        assert_eq!(human_period(d(30 * 86_400)), "30 days");
        assert_eq!(human_period(d(90 * 60)), "90 minutes");
        assert_eq!(human_period(d(1)), "a second");
        assert_eq!(human_period(d(31_557_600)), "a year", "`1y` is 365.25 days");
    }
}
