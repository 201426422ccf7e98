//! The YAML front matter at the top of a policy file.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::domain::{Acceptance, Audience, Slug, parse_effective, parse_reaccept_after};

/// The settings of one policy file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontMatter {
    pub title: String,
    pub effective: DateTime<Utc>,
    pub material: bool,
    pub summary: Option<String>,
    pub part_of: Option<Slug>,
    /// The line of `part_of`, for problems found across documents (it names no document).
    pub part_of_line: Option<usize>,
    pub acceptance: Acceptance,
    pub draft: bool,
    /// The audiences it applies to, sorted (empty: everyone), and the line that names them.
    pub audiences: Vec<Audience>,
    pub audiences_line: Option<usize>,
    pub reaccept_after: Option<chrono::TimeDelta>,
    pub reaccept_after_line: Option<usize>,
}

/// What a translation file may say: its own title and summary; anything else it names must
/// agree with the original, which owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationFrontMatter {
    pub title: String,
    pub summary: Option<String>,
    /// Settings the translation repeats; checked against the original by the caller.
    pub repeated: Repeated,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repeated {
    pub effective: Option<(DateTime<Utc>, usize)>,
    pub material: Option<(bool, usize)>,
    pub part_of: Option<(Option<Slug>, usize)>,
    pub acceptance: Option<(Acceptance, usize)>,
    pub draft: Option<(bool, usize)>,
    pub audiences: Option<(Vec<Audience>, usize)>,
    pub reaccept_after: Option<(chrono::TimeDelta, usize)>,
}

/// A problem at a line of the file (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// A file split into its front matter and its Markdown body.
#[derive(Debug, Clone, PartialEq)]
pub struct Split<'a> {
    pub yaml: &'a str,
    /// Line number (1-based) of the first YAML line.
    pub yaml_first_line: usize,
    pub body: &'a str,
    /// Line number (1-based) of the first body line.
    pub body_first_line: usize,
}

/// Splits `---\n<yaml>\n---\n<body>`.
pub fn split(text: &str) -> Result<Split<'_>, LineError> {
    let text_no_bom = text.strip_prefix('\u{feff}').unwrap_or(text);
    let offset = text.len() - text_no_bom.len();
    let mut lines = text_no_bom.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Err(LineError {
            line: 1,
            message:
                "the file must start with YAML front matter: a line `---`, then `title:` and `effective:`, then `---`"
                    .into(),
        });
    }
    let yaml_start = offset + first.len();
    let mut pos = yaml_start;
    let mut line_no = 1;
    for line in lines {
        line_no += 1;
        if line.trim_end() == "---" {
            let body_start = pos + line.len();
            return Ok(Split {
                yaml: &text[yaml_start..pos],
                yaml_first_line: 2,
                body: &text[body_start..],
                body_first_line: line_no + 1,
            });
        }
        pos += line.len();
    }
    Err(LineError {
        line: 1,
        message: "the front matter opened here is never closed: add a line `---` after it".into(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    title: Option<Spanned<String>>,
    effective: Option<Spanned<String>>,
    material: Option<Spanned<bool>>,
    summary: Option<Spanned<String>>,
    part_of: Option<Spanned<String>>,
    acceptance: Option<Spanned<String>>,
    draft: Option<Spanned<bool>>,
    audiences: Option<Spanned<OneOrMany>>,
    reaccept_after: Option<Spanned<String>>,
}

/// `audiences: [a, b]`, or one name on its own.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

const KEYS: &str = "title, effective, material, summary, part_of, acceptance, draft, audiences, reaccept_after";

fn parse_raw(split: &Split<'_>) -> Result<Raw, LineError> {
    let first = split.yaml_first_line;
    if split.yaml.trim().is_empty() {
        return Err(LineError {
            line: first,
            message: "the front matter is empty: it needs at least `title:` and `effective:`".into(),
        });
    }
    serde_saphyr::from_str::<Raw>(split.yaml).map_err(|e| {
        let line = e.location().map_or(0, |l| usize::try_from(l.line()).unwrap_or(0));
        let line = first + line.saturating_sub(1);
        let text = e.without_snippet().to_string();
        let text = strip_location(&text);
        let message = if text.contains("unknown field") {
            format!("{text} (the keys are: {KEYS})")
        } else {
            format!("front matter: {text}")
        };
        LineError { line, message }
    })
}

/// serde-saphyr appends "at line L, column C"; the caller already says the line.
fn strip_location(text: &str) -> &str {
    text.find(" at line ").map_or(text, |i| &text[..i]).trim()
}

fn line_of<T>(split: &Split<'_>, s: &Spanned<T>) -> usize {
    split.yaml_first_line + usize::try_from(s.referenced.line()).unwrap_or(1).saturating_sub(1)
}

fn checked_title(split: &Split<'_>, title: Option<Spanned<String>>) -> Result<String, LineError> {
    match title {
        None => Err(LineError {
            line: split.yaml_first_line,
            message: "missing `title:` (the document's title at this version)".into(),
        }),
        Some(t) if t.value.trim().is_empty() => {
            Err(LineError { line: line_of(split, &t), message: "`title` is empty".into() })
        }
        Some(t) => Ok(t.value.trim().to_owned()),
    }
}

fn checked_summary(split: &Split<'_>, summary: Option<Spanned<String>>) -> Result<Option<String>, LineError> {
    match summary {
        Some(s) if s.value.len() > 2000 => Err(LineError {
            line: line_of(split, &s),
            message: "`summary` is longer than 2000 bytes: say what changed in one or two sentences".into(),
        }),
        Some(s) if s.value.trim().is_empty() => Ok(None),
        other => Ok(other.map(|s| s.value.trim().to_owned())),
    }
}

fn checked_effective(split: &Split<'_>, s: &Spanned<String>) -> Result<DateTime<Utc>, LineError> {
    parse_effective(&s.value).map_err(|e| LineError { line: line_of(split, s), message: format!("`effective`: {e}") })
}

fn checked_part_of(split: &Split<'_>, s: &Spanned<String>) -> Result<Slug, LineError> {
    Slug::parse(s.value.trim()).map_err(|e| LineError { line: line_of(split, s), message: format!("`part_of`: {e}") })
}

fn checked_acceptance(split: &Split<'_>, s: &Spanned<String>) -> Result<Acceptance, LineError> {
    s.value.trim().parse().map_err(|e| LineError { line: line_of(split, s), message: format!("`acceptance`: {e}") })
}

fn checked_audiences(split: &Split<'_>, s: &Spanned<OneOrMany>) -> Result<Vec<Audience>, LineError> {
    let line = line_of(split, s);
    let names = match &s.value {
        OneOrMany::One(name) => vec![name.as_str()],
        OneOrMany::Many(names) => names.iter().map(String::as_str).collect(),
    };
    if names.is_empty() {
        return Err(LineError {
            line,
            message: "`audiences` is empty: name at least one audience, or leave the key out to mean everyone".into(),
        });
    }
    let mut audiences = names
        .into_iter()
        .map(|n| Audience::parse(n.trim()).map_err(|e| LineError { line, message: format!("`audiences`: {e}") }))
        .collect::<Result<Vec<_>, _>>()?;
    audiences.sort();
    audiences.dedup();
    Ok(audiences)
}

fn checked_reaccept_after(split: &Split<'_>, s: &Spanned<String>) -> Result<chrono::TimeDelta, LineError> {
    parse_reaccept_after(&s.value)
        .map_err(|e| LineError { line: line_of(split, s), message: format!("`reaccept_after`: {e}") })
}

/// Parses and checks the front matter of an original (untranslated) version.
pub fn parse(split: &Split<'_>) -> Result<FrontMatter, LineError> {
    let raw = parse_raw(split)?;
    let title = checked_title(split, raw.title)?;
    let effective = match &raw.effective {
        None => {
            return Err(LineError {
                line: split.yaml_first_line,
                message: "missing `effective:` (when this version takes effect, such as `2026-12-01`)".into(),
            });
        }
        Some(s) => checked_effective(split, s)?,
    };
    Ok(FrontMatter {
        title,
        effective,
        material: raw.material.is_none_or(|m| m.value),
        summary: checked_summary(split, raw.summary)?,
        part_of: raw.part_of.as_ref().map(|s| checked_part_of(split, s)).transpose()?,
        part_of_line: raw.part_of.as_ref().map(|s| line_of(split, s)),
        acceptance: match &raw.acceptance {
            Some(s) => checked_acceptance(split, s)?,
            None => Acceptance::Required,
        },
        draft: raw.draft.is_some_and(|d| d.value),
        audiences: raw.audiences.as_ref().map(|s| checked_audiences(split, s)).transpose()?.unwrap_or_default(),
        audiences_line: raw.audiences.as_ref().map(|s| line_of(split, s)),
        reaccept_after: raw.reaccept_after.as_ref().map(|s| checked_reaccept_after(split, s)).transpose()?,
        reaccept_after_line: raw.reaccept_after.as_ref().map(|s| line_of(split, s)),
    })
}

/// Parses the front matter of a translation.
pub fn parse_translation(split: &Split<'_>) -> Result<TranslationFrontMatter, LineError> {
    let raw = parse_raw(split)?;
    let title = checked_title(split, raw.title)?;
    let summary = checked_summary(split, raw.summary)?;
    let repeated = Repeated {
        effective: match &raw.effective {
            Some(s) => Some((checked_effective(split, s)?, line_of(split, s))),
            None => None,
        },
        material: raw.material.as_ref().map(|m| (m.value, line_of(split, m))),
        part_of: match &raw.part_of {
            Some(s) => Some((Some(checked_part_of(split, s)?), line_of(split, s))),
            None => None,
        },
        acceptance: match &raw.acceptance {
            Some(s) => Some((checked_acceptance(split, s)?, line_of(split, s))),
            None => None,
        },
        draft: raw.draft.as_ref().map(|d| (d.value, line_of(split, d))),
        audiences: match &raw.audiences {
            Some(s) => Some((checked_audiences(split, s)?, line_of(split, s))),
            None => None,
        },
        reaccept_after: match &raw.reaccept_after {
            Some(s) => Some((checked_reaccept_after(split, s)?, line_of(split, s))),
            None => None,
        },
    };
    Ok(TranslationFrontMatter { title, summary, repeated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(text: &str) -> Result<FrontMatter, LineError> {
        parse(&split(text)?)
    }

    #[test]
    fn a_complete_front_matter_parses() {
        let f = front("---\ntitle: Terms\neffective: 2026-12-01\nmaterial: false\nsummary: Typos.\npart_of: service-agreement\nacceptance: informational\n---\nBody\n").unwrap();
        assert_eq!(f.title, "Terms");
        assert!(!f.material);
        assert_eq!(f.part_of.unwrap().as_str(), "service-agreement");
        assert_eq!(f.acceptance, Acceptance::Informational);
        assert!(!f.draft);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = front("---\ntitle: Terms\neffective: 2026-12-01\nefective: 2026-12-02\n---\nBody\n").unwrap_err();
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.message.contains("efective"), "{}", e.message);
    }

    #[test]
    fn bad_values_point_at_their_line() {
        let e = front("---\ntitle: Terms\neffective: someday\n---\nBody\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("effective"), "{}", e.message);
        let e = front("---\ntitle: Terms\neffective: 2026-01-01\npart_of: Not A Slug\n---\nx\n").unwrap_err();
        assert_eq!(e.line, 4);
        let e = front("---\ntitle: Terms\neffective: 2026-01-01\nmaterial: maybe\n---\nx\n").unwrap_err();
        assert_eq!(e.line, 4, "{e:?}");
    }

    #[test]
    fn audiences_and_reaccept_after_parse_and_bad_ones_name_their_line() {
        let f = front(
            "---\ntitle: T\neffective: 2026-01-01\naudiences: [sdk-users, developers]\nreaccept_after: 52w\n---\nx\n",
        )
        .unwrap();
        let names: Vec<&str> = f.audiences.iter().map(Audience::as_str).collect();
        assert_eq!(names, ["developers", "sdk-users"]);
        assert_eq!(f.audiences_line, Some(4));
        assert_eq!(f.reaccept_after, chrono::TimeDelta::try_days(364));
        let one = front("---\ntitle: T\neffective: 2026-01-01\naudiences: developers\n---\nx\n").unwrap();
        assert_eq!(one.audiences.len(), 1);
        assert!(front("---\ntitle: T\neffective: 2026-01-01\n---\nx\n").unwrap().audiences.is_empty());
        for (yaml, line, says) in [
            ("audiences: [Developers]", 4, "audience"),
            ("audiences: []", 4, "empty"),
            ("audiences: {a: b}", 4, ""),
            ("reaccept_after: soon", 4, "reaccept_after"),
            ("reaccept_after: 0s", 4, "reaccept_after"),
            ("reaccept_after: 500y", 4, "100 years"),
        ] {
            let e = front(&format!("---\ntitle: T\neffective: 2026-01-01\n{yaml}\n---\nx\n")).unwrap_err();
            assert_eq!(e.line, line, "{yaml}: {e:?}");
            assert!(e.message.contains(says), "{yaml}: {}", e.message);
        }
    }

    #[test]
    fn missing_and_malformed_front_matter_is_explained() {
        assert!(front("# No front matter\n").unwrap_err().message.contains("must start"));
        assert!(front("---\ntitle: x\n").unwrap_err().message.contains("never closed"));
        assert!(front("---\neffective: 2026-01-01\n---\nx").unwrap_err().message.contains("title"));
        assert!(front("---\ntitle: x\n---\nx").unwrap_err().message.contains("effective"));
        let e = front("---\ntitle: [unclosed\neffective: 2026-01-01\n---\nx").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }
}
