//! Markdown → sanitised HTML plus a table of contents.
//!
//! All pulldown-cmark options live here. A [`SafeHtml`] comes from [`render`] (which runs every
//! byte through ammonia), from [`SafeHtml::from_stored`] for HTML that `render` produced at
//! publish time, or, inside the crate, from the redline's own ammonia pass
//! (`SafeHtml::cleaned`); `within` and `concat` only wrap or join such fragments with markup of
//! the code's own. Templates render `SafeHtml` unescaped and nothing else.

use std::collections::{HashMap, HashSet};

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

/// HTML that has been through the sanitiser. Templates print it as it is (askama's `HtmlSafe`);
/// every other string they print is escaped, so no template needs `|safe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SafeHtml(String);

impl askama::filters::HtmlSafe for SafeHtml {}

impl SafeHtml {
    /// What the sanitiser (`ammonia`) just returned.
    pub(crate) fn cleaned(html: String) -> Self {
        Self(html)
    }

    /// This HTML inside an element of the code's own: `open` and `close` are literals.
    pub(crate) fn within(&self, open: &'static str, close: &'static str) -> SafeHtml {
        SafeHtml(format!("{open}{}{close}", self.0))
    }

    /// Several fragments one after the other.
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a SafeHtml>) -> SafeHtml {
        SafeHtml(parts.into_iter().map(|p| p.0.as_str()).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// HTML read back from the store, where only [`render`] output is ever written.
    pub fn from_stored(html: String) -> Self {
        Self(html)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The same HTML with every heading `by` levels lower (at most `h6`), for text shown
    /// inside a page that has headings of its own. Tags in sanitised HTML are canonical and text
    /// never holds a raw `<`, so this is a plain rewrite of tag names.
    pub fn demote_headings(&self, by: u8) -> SafeHtml {
        SafeHtml(demote_headings(&self.0, by))
    }
}

/// See [`SafeHtml::demote_headings`]; for fragments already sanitised.
fn demote_headings(html: &str, by: u8) -> String {
    let mut out = html.to_owned();
    for level in (1..=6u8).rev() {
        let to = (level + by).min(6);
        if to != level {
            out = out
                .replace(&format!("<h{level}"), &format!("<h{to}"))
                .replace(&format!("</h{level}>"), &format!("</h{to}>"));
        }
    }
    out
}

impl std::fmt::Display for SafeHtml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One heading in the table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    pub level: u8,
    pub id: String,
    pub text: String,
}

/// A rendered policy body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub html: SafeHtml,
    pub toc: Vec<TocEntry>,
}

pub(crate) fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
}

/// Renders a policy body: every heading gets a stable id (its text, slugified, made unique),
/// headings become the table of contents, and the HTML is sanitised.
pub fn render(markdown: &str) -> Rendered {
    let events: Vec<Event<'_>> = Parser::new_ext(markdown, options()).collect();
    let (events, toc) = assign_heading_ids(events);
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut raw, events.into_iter());
    Rendered { html: SafeHtml(sanitizer().clean(&raw).to_string()), toc }
}

fn assign_heading_ids(mut events: Vec<Event<'_>>) -> (Vec<Event<'_>>, Vec<TocEntry>) {
    let mut toc = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { level, id, .. }) = &events[i] {
            let level = *level;
            let explicit = id.as_ref().map(|s| s.to_string());
            let end = events[i..]
                .iter()
                .position(|e| matches!(e, Event::End(TagEnd::Heading(_))))
                .map_or(events.len(), |p| i + p);
            let text: String = events[i + 1..end]
                .iter()
                .filter_map(|e| match e {
                    Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                    _ => None,
                })
                .collect();
            let base = explicit.unwrap_or_else(|| slugify(&text));
            let unique = unique_id(&base, &mut used);
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(unique.clone()));
            }
            toc.push(TocEntry { level: heading_depth(level), id: unique, text: text.trim().to_owned() });
            i = end;
        }
        i += 1;
    }
    (events, toc)
}

fn heading_depth(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// `1. Scope of Application` → `1-scope-of-application`. Letters of any script are kept, so a
/// translated heading still gets a readable id.
fn slugify(text: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    if out.is_empty() {
        out.push_str("section");
    }
    out
}

fn unique_id(base: &str, used: &mut HashSet<String>) -> String {
    let mut candidate = base.to_owned();
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}

pub(crate) fn sanitizer() -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    let headings = ["h1", "h2", "h3", "h4", "h5", "h6"];
    let mut tag_attributes: HashMap<&str, HashSet<&str>> = HashMap::new();
    for h in headings {
        tag_attributes.insert(h, HashSet::from(["id"]));
    }
    // Footnotes: pulldown-cmark links references to definitions by id.
    tag_attributes.insert("div", HashSet::from(["id"]));
    tag_attributes.insert("input", HashSet::from(["type", "checked", "disabled"]));
    tag_attributes.insert("th", HashSet::from(["style"]));
    tag_attributes.insert("td", HashSet::from(["style"]));
    builder
        .add_tags(["input"])
        .add_tag_attributes("a", ["id"])
        .add_tag_attributes("sup", ["id"])
        .add_tag_attributes("li", ["id"])
        .set_tag_attribute_value("input", "type", "checkbox")
        .set_tag_attribute_value("input", "disabled", "")
        .add_allowed_classes("div", ["footnote-definition"])
        .add_allowed_classes("sup", ["footnote-reference", "footnote-definition-label"])
        .add_allowed_classes("ol", ["footnotes-list"])
        .add_allowed_classes("ins", ["block"])
        .add_allowed_classes("del", ["block"])
        .filter_style_properties(HashSet::from(["text-align"]));
    for (tag, attrs) in tag_attributes {
        builder.add_tag_attributes(tag, attrs);
    }
    builder
}

#[cfg(test)]
mod tests {
    /// HTML reaches a page only as `SafeHtml`; a `|safe` in a template would print a plain
    /// string unescaped.
    #[test]
    fn no_template_marks_a_string_safe() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("|safe"), "{} uses |safe", path.display());
        }
    }

    use super::*;

    #[test]
    fn headings_get_unique_ids_and_a_toc() {
        let r = render("## 1. Scope\n\ntext\n\n## 1. Scope\n\n### Cookies {#cookies}\n");
        assert_eq!(
            r.toc,
            vec![
                TocEntry { level: 2, id: "1-scope".into(), text: "1. Scope".into() },
                TocEntry { level: 2, id: "1-scope-2".into(), text: "1. Scope".into() },
                TocEntry { level: 3, id: "cookies".into(), text: "Cookies".into() },
            ]
        );
        assert!(r.html.as_str().contains(r#"<h2 id="1-scope">1. Scope</h2>"#), "{}", r.html);
        assert!(r.html.as_str().contains(r#"<h3 id="cookies">"#));
    }

    #[test]
    fn headings_can_be_demoted_for_embedding() {
        let r = render("# A\n\n## B\n\n###### C\n\nText about `<h2>` tags.\n");
        let html = r.html.demote_headings(2).into_string();
        assert!(html.contains("<h3 id=\"a\">A</h3>") && html.contains("<h4 id=\"b\">B</h4>"), "{html}");
        assert!(html.contains("<h6 id=\"c\">C</h6>"), "{html}");
        assert!(html.contains("<code>&lt;h2&gt;</code> tags"), "text is untouched: {html}");
    }

    #[test]
    fn extensions_render() {
        let r = render(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~\n\n- [x] done\n- [ ] open\n\nNote[^1].\n\n[^1]: The note.\n",
        );
        let html = r.html.as_str();
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<del>old</del>"), "{html}");
        assert!(html.contains(r#"type="checkbox""#), "{html}");
        assert!(html.contains("footnote-definition"), "{html}");
    }

    #[test]
    fn hostile_markdown_is_defused() {
        let hostile = concat!(
            "<script>alert(1)</script>\n\n",
            "<img src=x onerror=alert(2)>\n\n",
            "[click](javascript:alert(3))\n\n",
            "<a href=\"JaVaScRiPt:alert(4)\">x</a>\n\n",
            "<div onclick=\"alert(5)\" style=\"background:url(javascript:alert(6))\">y</div>\n\n",
            "<iframe src=\"https://example.com\"></iframe>\n\n",
            "<svg><script>alert(7)</script></svg>\n\n",
            "<input type=\"text\" onfocus=\"alert(8)\" autofocus>\n\n",
            "## Heading {onclick=alert(9)}\n",
        );
        let html = render(hostile).html.into_string();
        let lower = html.to_lowercase();
        for bad in [
            "<script",
            "onerror",
            "onclick",
            "onfocus",
            "javascript:",
            "<iframe",
            "<svg",
            "style=\"background",
            r#"type="text""#,
        ] {
            assert!(!lower.contains(bad), "`{bad}` survived in {html}");
        }
    }
}
