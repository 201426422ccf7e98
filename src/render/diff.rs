//! What changed between two versions of a policy, the way a lawyer reads a redline.
//!
//! Both bodies are split into Markdown blocks (headings, paragraphs, list items, table rows …),
//! the blocks are aligned, and inside a block that changed the words that changed are marked
//! with `<ins>`/`<del>`. The diff works on the *rendered* text of each block, so readers see
//! formatted policy text, never raw Markdown; every fragment goes through the sanitiser.
//!
//! Known limit: blocks are rendered one at a time, so reference-style links and footnotes whose
//! definition sits in another block render as plain text inside a diff (they render normally
//! on the version pages).

use std::ops::Range;
use std::time::{Duration, Instant};

use pulldown_cmark::{Alignment, Event, Parser, Tag, TagEnd};
use serde::Serialize;
use similar::{Algorithm, DiffOp, TextDiff, capture_diff_slices_deadline};

use super::markdown::{SafeHtml, options, sanitizer};

/// A bound on the work one diff may take (pathological input falls back to coarser output).
const DEADLINE: Duration = Duration::from_millis(500);

/// How two blocks at one place compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Unchanged,
    Changed,
    Inserted,
    Deleted,
}

/// A run of text in a changed block: kept, inserted or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub op: &'static str,
    pub text: String,
}

/// One aligned block of the diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffBlock {
    pub change: Change,
    /// The heading this block sits under (in the newer text; the older one for deletions).
    pub section: Option<String>,
    pub old_markdown: Option<String>,
    pub new_markdown: Option<String>,
    /// The block as formatted text, with `<ins>`/`<del>` inside (sanitised).
    #[serde(skip)]
    pub html: SafeHtml,
    /// For the side-by-side view: the older block with `<del>`, the newer with `<ins>`.
    #[serde(skip)]
    pub old_html: SafeHtml,
    #[serde(skip)]
    pub new_html: SafeHtml,
    /// Word-level runs of a changed block (empty for other blocks).
    pub segments: Vec<Segment>,
    pub insertions: usize,
    pub deletions: usize,
}

/// The whole difference between two texts.
#[derive(Debug, Clone, Serialize)]
pub struct TextChanges {
    pub blocks: Vec<DiffBlock>,
    /// Words inserted and deleted.
    pub insertions: usize,
    pub deletions: usize,
}

impl TextChanges {
    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(|b| b.change == Change::Unchanged)
    }

    /// Bytes held, for the cache's budget.
    pub fn weight(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| {
                b.html.len()
                    + b.old_html.len()
                    + b.new_html.len()
                    + b.old_markdown.as_ref().map_or(0, String::len)
                    + b.new_markdown.as_ref().map_or(0, String::len)
                    + b.segments.iter().map(|s| s.text.len() + 16).sum::<usize>()
                    + 160
            })
            .sum()
    }
}

/// A unified diff of two files, which `patch` applies.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(DEADLINE)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// Compares two Markdown bodies.
pub fn diff(old: &str, new: &str) -> TextChanges {
    let deadline = Instant::now() + DEADLINE;
    let cleaner = sanitizer();
    let old_blocks = split_blocks(old);
    let new_blocks = split_blocks(new);
    let old_keys: Vec<&str> = old_blocks.iter().map(|b| b.key.as_str()).collect();
    let new_keys: Vec<&str> = new_blocks.iter().map(|b| b.key.as_str()).collect();
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &old_keys, &new_keys, Some(deadline));

    let mut out = Builder { cleaner: &cleaner, blocks: Vec::new(), section: None, deadline };
    for op in ops {
        match op {
            DiffOp::Equal { old_index, new_index, len } => {
                for k in 0..len {
                    out.unchanged(&old_blocks[old_index + k], &new_blocks[new_index + k]);
                }
            }
            DiffOp::Delete { old_index, old_len, .. } => {
                for b in &old_blocks[old_index..old_index + old_len] {
                    out.deleted(b);
                }
            }
            DiffOp::Insert { new_index, new_len, .. } => {
                for b in &new_blocks[new_index..new_index + new_len] {
                    out.inserted(b);
                }
            }
            DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                out.replaced(&old_blocks[old_index..old_index + old_len], &new_blocks[new_index..new_index + new_len]);
            }
        }
    }
    let insertions = out.blocks.iter().map(|b| b.insertions).sum();
    let deletions = out.blocks.iter().map(|b| b.deletions).sum();
    TextChanges { blocks: out.blocks, insertions, deletions }
}

/// One Markdown block, parsed.
struct Block<'a> {
    events: Vec<Event<'a>>,
    range: Range<usize>,
    wrap: Wrap,
    source: &'a str,
    /// The text compared to align blocks: whitespace folded, list markers dropped.
    key: String,
    heading: Option<String>,
}

/// The container a block needs around it to render as it does in the document.
#[derive(Clone)]
enum Wrap {
    None,
    List(Option<u64>),
    TableHead(Vec<Alignment>),
    TableRow(Vec<Alignment>),
}

enum Container {
    List { start: Option<u64>, index: u64 },
    Table(Vec<Alignment>),
}

/// Splits Markdown into top-level blocks; lists into items and tables into rows.
fn split_blocks(markdown: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut containers: Vec<Container> = Vec::new();
    let mut current: Option<(Vec<Event<'_>>, Range<usize>, Wrap)> = None;
    let mut depth = 0usize;
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        if let Some((events, _, _)) = current.as_mut() {
            match &event {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth = depth.saturating_sub(1),
                _ => {}
            }
            events.push(event);
            if depth == 0
                && let Some((events, range, wrap)) = current.take()
            {
                blocks.push(make_block(markdown, events, range, wrap));
            }
            continue;
        }
        match event {
            Event::Start(Tag::List(start)) if containers.is_empty() => {
                containers.push(Container::List { start, index: 0 });
            }
            Event::Start(Tag::Table(aligns)) if containers.is_empty() => {
                containers.push(Container::Table(aligns));
            }
            Event::End(TagEnd::List(_) | TagEnd::Table) => {
                containers.pop();
            }
            Event::Start(tag) => {
                let wrap = match containers.last_mut() {
                    Some(Container::List { start, index }) => {
                        let n = start.map(|s| s + *index);
                        *index += 1;
                        Wrap::List(n)
                    }
                    Some(Container::Table(aligns)) if matches!(tag, Tag::TableHead) => Wrap::TableHead(aligns.clone()),
                    Some(Container::Table(aligns)) => Wrap::TableRow(aligns.clone()),
                    None => Wrap::None,
                };
                current = Some((vec![Event::Start(tag)], range, wrap));
                depth = 1;
            }
            Event::End(_) => {
                containers.pop();
            }
            other => blocks.push(make_block(markdown, vec![other], range, Wrap::None)),
        }
    }
    if let Some((events, range, wrap)) = current.take() {
        blocks.push(make_block(markdown, events, range, wrap));
    }
    blocks
}

fn make_block<'a>(markdown: &'a str, events: Vec<Event<'a>>, range: Range<usize>, wrap: Wrap) -> Block<'a> {
    let source = markdown.get(range.clone()).unwrap_or("").trim_end();
    let mut body = source;
    if matches!(wrap, Wrap::List(_)) {
        body = strip_list_marker(body);
    }
    let key = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let heading = matches!(events.first(), Some(Event::Start(Tag::Heading { .. }))).then(|| {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect::<String>()
            .trim()
            .to_owned()
    });
    Block { events, range, wrap, source, key, heading }
}

fn strip_list_marker(item: &str) -> &str {
    let trimmed = item.trim_start();
    if let Some(rest) = trimmed.strip_prefix(['-', '*', '+']) {
        return rest;
    }
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0
        && let Some(rest) = trimmed[digits..].strip_prefix(['.', ')'])
    {
        return rest;
    }
    trimmed
}

/// The block's HTML as it renders in the document (not yet sanitised).
fn block_html(block: &Block<'_>) -> String {
    let mut events: Vec<Event<'_>> = Vec::with_capacity(block.events.len() + 4);
    match &block.wrap {
        Wrap::None => {}
        Wrap::List(start) => events.push(Event::Start(Tag::List(*start))),
        Wrap::TableHead(aligns) => events.push(Event::Start(Tag::Table(aligns.clone()))),
        Wrap::TableRow(aligns) => {
            // An empty head, so that the row's cells render as body cells.
            events.push(Event::Start(Tag::Table(aligns.clone())));
            events.push(Event::Start(Tag::TableHead));
            events.push(Event::End(TagEnd::TableHead));
        }
    }
    events.extend(block.events.iter().cloned());
    match &block.wrap {
        Wrap::None => {}
        Wrap::List(start) => events.push(Event::End(TagEnd::List(start.is_some()))),
        Wrap::TableHead(_) | Wrap::TableRow(_) => events.push(Event::End(TagEnd::Table)),
    }
    let mut html = String::with_capacity(block.range.len() + 32);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

struct Builder<'c> {
    cleaner: &'c ammonia::Builder<'static>,
    blocks: Vec<DiffBlock>,
    section: Option<String>,
    deadline: Instant,
}

impl Builder<'_> {
    fn clean(&self, html: &str) -> SafeHtml {
        SafeHtml::cleaned(self.cleaner.clean(html).to_string())
    }

    fn enter(&mut self, block: &Block<'_>) {
        if let Some(h) = &block.heading {
            self.section = Some(h.clone());
        }
    }

    fn unchanged(&mut self, _old: &Block<'_>, new: &Block<'_>) {
        self.enter(new);
        let html = self.clean(&block_html(new));
        self.blocks.push(DiffBlock {
            change: Change::Unchanged,
            section: self.section.clone(),
            old_markdown: None,
            new_markdown: None,
            old_html: SafeHtml::default(),
            new_html: SafeHtml::default(),
            html,
            segments: Vec::new(),
            insertions: 0,
            deletions: 0,
        });
    }

    fn inserted(&mut self, new: &Block<'_>) {
        self.enter(new);
        let html = self.clean(&block_html(new));
        let words = count_words(&tokens(html.as_str()));
        let shown = html.within("<ins class=\"block\">", "</ins>");
        self.blocks.push(DiffBlock {
            change: Change::Inserted,
            section: self.section.clone(),
            old_markdown: None,
            new_markdown: Some(new.source.to_owned()),
            old_html: SafeHtml::default(),
            new_html: shown.clone(),
            html: shown,
            segments: vec![Segment { op: "insert", text: plain_text(html.as_str()) }],
            insertions: words,
            deletions: 0,
        });
    }

    fn deleted(&mut self, old: &Block<'_>) {
        let section = old.heading.clone().or_else(|| self.section.clone());
        let html = self.clean(&block_html(old));
        let words = count_words(&tokens(html.as_str()));
        let shown = html.within("<del class=\"block\">", "</del>");
        self.blocks.push(DiffBlock {
            change: Change::Deleted,
            section,
            old_markdown: Some(old.source.to_owned()),
            new_markdown: None,
            old_html: shown.clone(),
            new_html: SafeHtml::default(),
            html: shown,
            segments: vec![Segment { op: "delete", text: plain_text(html.as_str()) }],
            insertions: 0,
            deletions: words,
        });
    }

    /// Old blocks replaced by new ones: pair those that are rewordings of each other, and show
    /// the rest as whole deletions and insertions.
    fn replaced(&mut self, old: &[Block<'_>], new: &[Block<'_>]) {
        let (mut i, mut j) = (0, 0);
        while i < old.len() && j < new.len() {
            if alike(&old[i], &new[j]) {
                self.changed(&old[i], &new[j]);
                i += 1;
                j += 1;
            } else if j + 1 < new.len() && alike(&old[i], &new[j + 1]) {
                self.inserted(&new[j]);
                j += 1;
            } else if i + 1 < old.len() && alike(&old[i + 1], &new[j]) {
                self.deleted(&old[i]);
                i += 1;
            } else {
                self.deleted(&old[i]);
                self.inserted(&new[j]);
                i += 1;
                j += 1;
            }
        }
        for b in &old[i..] {
            self.deleted(b);
        }
        for b in &new[j..] {
            self.inserted(b);
        }
    }

    fn changed(&mut self, old: &Block<'_>, new: &Block<'_>) {
        self.enter(new);
        let old_html = self.clean(&block_html(old));
        let new_html = self.clean(&block_html(new));
        let a = tokens(old_html.as_str());
        let b = tokens(new_html.as_str());
        let ops = capture_diff_slices_deadline(Algorithm::Myers, &a, &b, Some(self.deadline));
        let runs = merge_small_equal_runs(&ops, &a, &b);
        let mut inline = String::new();
        let mut left = String::new();
        let mut right = String::new();
        let mut segments: Vec<Segment> = Vec::new();
        let (mut insertions, mut deletions) = (0, 0);
        for run in runs {
            let (deleted, inserted, equal): (&[&str], &[&str], &[&str]) = match run {
                Run::Equal(new) => (&[], &[], &b[new]),
                Run::Change(old, new) => (&a[old], &b[new], &[]),
            };
            if !equal.is_empty() {
                // Equal runs come from the newer side; the older side's tokens are the same.
                for t in equal {
                    inline.push_str(t);
                    left.push_str(t);
                    right.push_str(t);
                }
                push_segment(&mut segments, "equal", equal);
            }
            if !deleted.is_empty() {
                wrap_run(&mut inline, "del", deleted, false);
                wrap_run(&mut left, "del", deleted, true);
                deletions += count_words(deleted);
                push_segment(&mut segments, "delete", deleted);
            }
            if !inserted.is_empty() {
                wrap_run(&mut inline, "ins", inserted, true);
                wrap_run(&mut right, "ins", inserted, true);
                insertions += count_words(inserted);
                push_segment(&mut segments, "insert", inserted);
            }
        }
        trim_edges(&mut segments);
        let change =
            if insertions + deletions == 0 && old.key == new.key { Change::Unchanged } else { Change::Changed };
        self.blocks.push(DiffBlock {
            change,
            section: self.section.clone(),
            old_markdown: Some(old.source.to_owned()),
            new_markdown: Some(new.source.to_owned()),
            html: self.clean(&inline),
            old_html: self.clean(&left),
            new_html: self.clean(&right),
            segments,
            insertions,
            deletions,
        });
    }
}

/// A stretch of a word-level diff.
enum Run {
    /// Tokens of the newer side that the older side has too.
    Equal(Range<usize>),
    /// Older tokens replaced by newer ones (either may be empty).
    Change(Range<usize>, Range<usize>),
}

/// Turns diff operations into runs, and folds a tiny unchanged run (a short word, a space or a
/// comma) that sits between two changes into them, so that a rewritten phrase reads as one
/// replacement rather than a comb of alternating marks.
fn merge_small_equal_runs(ops: &[DiffOp], old: &[&str], new: &[&str]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for op in ops {
        let (old_range, new_range) = (op.old_range(), op.new_range());
        match (op, runs.last_mut()) {
            (DiffOp::Equal { .. }, _) => runs.push(Run::Equal(new_range)),
            (_, Some(Run::Change(o, n))) => {
                o.end = old_range.end;
                n.end = new_range.end;
            }
            _ => runs.push(Run::Change(old_range, new_range)),
        }
    }
    let small = |range: &Range<usize>| {
        let tokens = &new[range.clone()];
        let words: Vec<&&str> = tokens.iter().filter(|t| t.chars().any(char::is_alphanumeric)).collect();
        tokens.iter().all(|t| !t.starts_with('<')) && words.len() <= 1 && words.iter().all(|w| w.chars().count() <= 4)
    };
    // Only changes of words pull a small run in; a change of white space alone does not.
    let wordy = |run: Option<&Run>| match run {
        Some(Run::Change(o, n)) => old[o.clone()]
            .iter()
            .chain(&new[n.clone()])
            .any(|t| !t.starts_with('<') && t.chars().any(char::is_alphanumeric)),
        _ => false,
    };
    let mut merged: Vec<Run> = Vec::with_capacity(runs.len());
    let mut iter = runs.into_iter().peekable();
    while let Some(run) = iter.next() {
        let absorb = matches!(&run, Run::Equal(r) if small(r)) && wordy(merged.last()) && wordy(iter.peek());
        if absorb && let (Some(Run::Change(o, n)), Some(Run::Change(next_o, next_n))) = (merged.last_mut(), iter.next())
        {
            o.end = next_o.end;
            n.end = next_n.end;
            continue;
        }
        merged.push(run);
    }
    merged
}

/// Whether two blocks are versions of one another (a rewording) rather than unrelated text:
/// at least half the words of the shorter one survive in the other.
fn alike(old: &Block<'_>, new: &Block<'_>) -> bool {
    if old.heading.is_some() != new.heading.is_some() {
        return false;
    }
    let words = |key: &str| -> Vec<String> {
        tokens(key).into_iter().filter(|t| t.chars().any(char::is_alphanumeric)).map(str::to_lowercase).collect()
    };
    let (a, b) = (words(&old.key), words(&new.key));
    let deadline = Instant::now() + Duration::from_millis(20);
    let common: usize = capture_diff_slices_deadline(Algorithm::Myers, &a, &b, Some(deadline))
        .iter()
        .map(|op| match op {
            DiffOp::Equal { len, .. } => *len,
            _ => 0,
        })
        .sum();
    common > 0 && common * 2 >= a.len().min(b.len())
}

/// Wraps the text of a run in `<ins>`/`<del>`. Markup inside the run is kept (`keep_markup`) or
/// dropped; the wrapper is closed around it so the result stays well nested.
fn wrap_run(out: &mut String, tag: &str, run: &[&str], keep_markup: bool) {
    let mut open = false;
    for t in run {
        if t.starts_with('<') {
            if open {
                out.push_str("</");
                out.push_str(tag);
                out.push('>');
                open = false;
            }
            if keep_markup {
                out.push_str(t);
            }
        } else {
            if !open {
                out.push('<');
                out.push_str(tag);
                out.push('>');
                open = true;
            }
            out.push_str(t);
        }
    }
    if open {
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
}

fn push_segment(segments: &mut Vec<Segment>, op: &'static str, run: &[&str]) {
    let text: String = run.iter().filter(|t| !t.starts_with('<')).map(|t| decode_entity(t)).collect();
    if text.is_empty() {
        return;
    }
    match segments.last_mut() {
        Some(last) if last.op == op => last.text.push_str(&text),
        _ => segments.push(Segment { op, text }),
    }
}

/// The block's own line breaks at either end are not text anyone reads.
fn trim_edges(segments: &mut Vec<Segment>) {
    if let Some(first) = segments.first_mut() {
        first.text = first.text.trim_start().to_owned();
    }
    if let Some(last) = segments.last_mut() {
        last.text = last.text.trim_end().to_owned();
    }
    segments.retain(|s| !s.text.is_empty());
}

fn plain_text(html: &str) -> String {
    tokens(html).iter().filter(|t| !t.starts_with('<')).map(|t| decode_entity(t)).collect::<String>().trim().to_owned()
}

fn decode_entity(token: &str) -> &str {
    match token {
        "&amp;" => "&",
        "&lt;" => "<",
        "&gt;" => ">",
        "&quot;" => "\"",
        "&#39;" | "&#x27;" | "&apos;" => "'",
        "&nbsp;" => "\u{a0}",
        other => other,
    }
}

fn count_words(run: &[&str]) -> usize {
    run.iter().filter(|t| !t.starts_with('<') && t.chars().any(char::is_alphanumeric)).count()
}

/// Han, kana and hangul are written without spaces: each character is a word of its own.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Splits HTML into tags, words, runs of white space, entities and single punctuation marks.
fn tokens(html: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(html.len() / 4);
    let mut i = 0;
    while let Some(c) = html[i..].chars().next() {
        let rest = &html[i..];
        let len = if c == '<' {
            rest.find('>').map_or(rest.len(), |e| e + 1)
        } else if c == '&' {
            // An entity such as `&amp;` or `&#39;`; a lone `&` is one token. Bytes, not a slice,
            // so that a multi-byte character after the `&` is never cut.
            let name = rest.bytes().skip(1).take(10).take_while(|b| b.is_ascii_alphanumeric() || *b == b'#').count();
            if rest.as_bytes().get(name + 1) == Some(&b';') && name > 0 { name + 2 } else { 1 }
        } else if c.is_whitespace() {
            rest.find(|ch: char| !ch.is_whitespace()).unwrap_or(rest.len())
        } else if is_cjk(c) {
            c.len_utf8()
        } else if c.is_alphanumeric() {
            rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '\'' || ch == '’') || is_cjk(ch)).unwrap_or(rest.len())
        } else {
            c.len_utf8()
        };
        out.push(&rest[..len]);
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reworded_sentence_marks_only_the_changed_words() {
        let d = diff("## Use\n\nWe keep your data for ten years.\n", "## Use\n\nWe keep your data for two years.\n");
        let changed: Vec<_> = d.blocks.iter().filter(|b| b.change == Change::Changed).collect();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].html.as_str(), "<p>We keep your data for <del>ten</del><ins>two</ins> years.</p>\n");
        assert_eq!(changed[0].section.as_deref(), Some("Use"));
        assert_eq!((d.insertions, d.deletions), (1, 1));
        assert_eq!(
            changed[0].segments,
            vec![
                Segment { op: "equal", text: "We keep your data for ".into() },
                Segment { op: "delete", text: "ten".into() },
                Segment { op: "insert", text: "two".into() },
                Segment { op: "equal", text: " years.".into() },
            ]
        );
    }

    #[test]
    fn inserted_and_deleted_blocks_are_whole() {
        let d = diff("# T\n\nKeep.\n\nGone for good.\n", "# T\n\nKeep.\n\n## New\n\nBrand new text here.\n");
        let kinds: Vec<Change> = d.blocks.iter().map(|b| b.change).collect();
        assert!(kinds.contains(&Change::Deleted), "{kinds:?}");
        assert!(kinds.contains(&Change::Inserted), "{kinds:?}");
        let ins = d.blocks.iter().find(|b| b.change == Change::Inserted && b.html.as_str().contains("Brand")).unwrap();
        assert_eq!(ins.section.as_deref(), Some("New"));
        assert_eq!(d.insertions, 1 + 4);
        assert_eq!(d.deletions, 3);
    }

    #[test]
    fn list_items_and_table_rows_are_blocks_of_their_own() {
        let old = "1. first\n2. second\n3. third\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n";
        let new = "1. first\n2. second, amended\n3. third\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 5 |\n";
        let d = diff(old, new);
        let changed: Vec<_> = d.blocks.iter().filter(|b| b.change == Change::Changed).collect();
        assert_eq!(changed.len(), 2, "{:#?}", d.blocks);
        assert!(
            changed[0].html.as_str().contains("<ol start=\"2\"><li>second<ins>,</ins><ins> amended</ins></li></ol>")
                || changed[0].html.as_str().contains("second<ins>, amended</ins>"),
            "{}",
            changed[0].html
        );
        assert!(changed[1].html.as_str().contains("<td><del>4</del><ins>5</ins></td>"), "{}", changed[1].html);
        assert!(!changed[1].html.as_str().contains("<th>"), "a body row renders body cells: {}", changed[1].html);
    }

    #[test]
    fn renumbering_a_list_is_not_a_change() {
        let d = diff("- a\n- b\n\n1. x\n2. y\n", "- a\n- b\n\n1. x\n2. y\n");
        assert!(d.is_empty());
        let d = diff("Some text\nwrapped here.\n", "Some text wrapped\nhere.\n");
        assert!(d.is_empty(), "re-wrapping a paragraph changes nothing a reader sees");
    }

    #[test]
    fn formatting_is_kept_and_hostile_markup_is_not() {
        let d = diff("We **never** sell data.\n", "We **never** sell or rent data. <script>alert(1)</script>\n");
        let b = d.blocks.iter().find(|b| b.change == Change::Changed).unwrap();
        assert!(b.html.as_str().contains("<strong>never</strong>"), "{}", b.html);
        assert!(b.html.as_str().contains("<ins>or rent </ins>"), "{}", b.html);
        assert!(!b.html.as_str().contains("<script"), "{}", b.html);
    }

    #[test]
    fn a_rewritten_phrase_reads_as_one_replacement_not_a_comb() {
        let d = diff(
            "b) Share your personal information with third parties that are necessary to provide it;\n",
            "b) Share with service providers only the personal information that is necessary to provide it;\n",
        );
        let b = d.blocks.iter().find(|b| b.change == Change::Changed).unwrap();
        assert!(b.html.as_str().matches("<del>").count() <= 3, "{}", b.html);
        assert!(b.html.as_str().contains("necessary to provide it;"), "{}", b.html);
        assert!(b.html.as_str().starts_with("<p>b) Share "), "{}", b.html);
    }

    #[test]
    fn ampersands_next_to_any_text_never_split_a_character() {
        let d = diff("A & B — 数据 &数据数据数据数据\n", "A & C — 数据 &数据数据数据\n");
        assert!(!d.is_empty());
        assert_eq!(tokens("&数据;"), vec!["&", "数", "据", ";"]);
        assert_eq!(tokens("a&amp;b"), vec!["a", "&amp;", "b"]);
    }

    #[test]
    fn chinese_text_diffs_by_character() {
        let d = diff("我们保存您的数据十年。\n", "我们保存您的数据两年。\n");
        let b = d.blocks.iter().find(|b| b.change == Change::Changed).unwrap();
        assert!(b.html.as_str().contains("<del>十</del><ins>两</ins>"), "{}", b.html);
    }

    #[test]
    fn the_unified_diff_applies_with_patch_semantics() {
        let u = unified("a\nb\nc\n", "a\nB\nc\n", "a/v1.md", "b/v2.md");
        assert!(u.starts_with("--- a/v1.md\n+++ b/v2.md\n@@ -1,3 +1,3 @@\n"), "{u}");
        assert!(u.contains("-b\n+B\n"), "{u}");
    }
}
