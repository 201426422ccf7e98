//! The policy folder: reading and validating it ([`load`]), and publishing it into the store
//! ([`sync`]). Validation needs no database, so `assent check` can run anywhere.

pub mod frontmatter;
mod sync;

pub use sync::{SyncError, SyncReport, sync};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::{Locale, Slug, VersionNumber, sha256_hex};
use frontmatter::{FrontMatter, LineError, TranslationFrontMatter};

/// Policy files larger than this are refused: a policy is text for people to read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One problem in the policy folder, printed as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self { file: file.to_owned(), line, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A version file (original or translation), read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    pub path: PathBuf,
    pub number: VersionNumber,
    /// The exact file text: what `sha256` is computed over.
    pub source: String,
    pub sha256: String,
    /// The Markdown after the front matter.
    pub body: String,
}

/// An original-language version.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyVersion {
    pub file: PolicyFile,
    pub front: FrontMatter,
    pub translations: Vec<PolicyTranslation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTranslation {
    pub file: PolicyFile,
    pub locale: Locale,
    pub front: TranslationFrontMatter,
}

/// A document folder: versions 1..=N in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    pub slug: Slug,
    pub dir: PathBuf,
    pub versions: Vec<PolicyVersion>,
}

impl PolicyDocument {
    /// The versions that are published (not drafts).
    pub fn publishable(&self) -> impl Iterator<Item = &PolicyVersion> {
        self.versions.iter().filter(|v| !v.front.draft)
    }
}

/// A whole, valid policy folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicySet {
    pub documents: Vec<PolicyDocument>,
}

/// Reads and validates a policy folder. Either everything is valid, or every problem found is
/// returned (sorted by file and line), so one run of `assent check` shows them all.
pub fn load(dir: &Path) -> Result<PolicySet, Vec<Problem>> {
    let mut problems = Vec::new();
    let entries = match read_dir_sorted(dir) {
        Ok(e) => e,
        Err(p) => return Err(vec![p]),
    };
    let mut documents = Vec::new();
    // Documents whose folder has problems of its own: named by those problems, and not again
    // by a `part_of` that points at them.
    let mut broken = Vec::new();
    for entry in entries {
        let name = file_name(&entry);
        if name.starts_with('.') || !entry.is_dir() {
            continue; // a README or dotfile beside the documents is not a document
        }
        match Slug::parse(&name) {
            Ok(slug) => match load_document(&entry, slug.clone(), &mut problems) {
                Some(doc) => documents.push(doc),
                None => broken.push(slug),
            },
            Err(e) => problems.push(Problem::new(&entry, None, format!("folder name: {e}"))),
        }
    }
    if documents.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            dir,
            None,
            "no documents: expected folders such as `privacy-policy/` holding `v1.md`",
        ));
    }
    check_part_of(&documents, &broken, &mut problems);
    if problems.is_empty() {
        Ok(PolicySet { documents })
    } else {
        problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
        Err(problems)
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Problem> {
    let read =
        std::fs::read_dir(dir).map_err(|e| Problem::new(dir, None, format!("cannot read the policy folder: {e}")))?;
    let mut paths = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Problem::new(dir, None, format!("cannot read the policy folder: {e}")))?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `v12.md` → (12, None); `v2.pt-BR.md` → (2, Some("pt-BR")).
fn parse_file_name(name: &str) -> Option<(&str, Option<&str>)> {
    let stem = name.strip_prefix('v')?.strip_suffix(".md")?;
    let (number, locale) = match stem.split_once('.') {
        Some((n, l)) => (n, Some(l)),
        None => (stem, None),
    };
    Some((number, locale))
}

fn load_document(dir: &Path, slug: Slug, problems: &mut Vec<Problem>) -> Option<PolicyDocument> {
    let entries = match read_dir_sorted(dir) {
        Ok(e) => e,
        Err(p) => {
            problems.push(p);
            return None;
        }
    };
    let before = problems.len();
    let mut originals: BTreeMap<u32, (PolicyFile, FrontMatter)> = BTreeMap::new();
    let mut translation_fronts: Vec<(Locale, PolicyFile, TranslationFrontMatter)> = Vec::new();
    for path in entries {
        let name = file_name(&path);
        if name.starts_with('.') {
            continue;
        }
        let Some((number, locale)) = parse_file_name(&name) else {
            problems.push(Problem::new(
                &path,
                None,
                "not a version file: name versions `v1.md`, `v2.md` … and translations `v2.zh.md`",
            ));
            continue;
        };
        let number = match VersionNumber::parse_param(number) {
            Ok(crate::domain::VersionParam::Number(n)) if !number.starts_with('0') => n,
            _ => {
                problems.push(Problem::new(&path, None, "not a version file: the version number must be a whole number from 1 without leading zeros, as in `v1.md`"));
                continue;
            }
        };
        let Some(source) = read_text(&path, problems) else {
            continue;
        };
        let split = match frontmatter::split(&source) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::new(&path, Some(e.line), e.message));
                continue;
            }
        };
        if split.body.trim().is_empty() {
            problems.push(Problem::new(
                &path,
                Some(split.body_first_line.saturating_sub(1)),
                "the body is empty: the policy text goes after the closing `---`",
            ));
            continue;
        }
        let file = PolicyFile {
            path: path.clone(),
            number,
            sha256: sha256_hex(source.as_bytes()),
            body: split.body.to_owned(),
            source: source.clone(),
        };
        match locale {
            None => match frontmatter::parse(&split) {
                Ok(front) => {
                    originals.insert(number.get(), (file, front));
                }
                Err(LineError { line, message }) => problems.push(Problem::new(&path, Some(line), message)),
            },
            Some(tag) => {
                let locale = match Locale::parse(tag) {
                    Ok(l) => l,
                    Err(e) => {
                        problems.push(Problem::new(&path, None, e.to_string()));
                        continue;
                    }
                };
                match frontmatter::parse_translation(&split) {
                    Ok(front) => translation_fronts.push((locale, file, front)),
                    Err(LineError { line, message }) => problems.push(Problem::new(&path, Some(line), message)),
                }
            }
        }
    }
    if originals.is_empty() && problems.len() == before {
        problems.push(Problem::new(dir, None, "no versions: a document folder needs at least `v1.md`"));
        return None;
    }
    check_sequence(dir, &originals, problems);
    let mut versions: Vec<PolicyVersion> =
        originals.into_values().map(|(file, front)| PolicyVersion { file, front, translations: Vec::new() }).collect();
    attach_translations(&mut versions, translation_fronts, problems);
    (problems.len() == before).then_some(PolicyDocument { slug, dir: dir.to_owned(), versions })
}

/// Reads a file as UTF-8 text, refusing huge files and naming the line of invalid bytes.
fn read_text(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            problems.push(Problem::new(
                path,
                None,
                format!("the file is {} bytes; a policy file may be at most {} bytes", m.len(), MAX_FILE_BYTES),
            ));
            return None;
        }
        Ok(m) if !m.is_file() => {
            problems.push(Problem::new(path, None, "not a regular file"));
            return None;
        }
        Ok(_) => {}
        Err(e) => {
            problems.push(Problem::new(path, None, format!("cannot read: {e}")));
            return None;
        }
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            problems.push(Problem::new(path, None, format!("cannot read: {e}")));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid].iter().filter(|b| **b == b'\n').count() + 1;
            problems.push(Problem::new(
                path,
                Some(line),
                format!("not valid UTF-8 (byte {valid} of the file): save it as UTF-8"),
            ));
            None
        }
    }
}

fn check_sequence(dir: &Path, originals: &BTreeMap<u32, (PolicyFile, FrontMatter)>, problems: &mut Vec<Problem>) {
    let mut expected = 1;
    let mut previous: Option<&(PolicyFile, FrontMatter)> = None;
    for (n, entry) in originals {
        let (file, front) = entry;
        if *n != expected {
            let missing: Vec<String> = (expected..*n).map(|m| format!("v{m}.md")).collect();
            problems.push(Problem::new(
                dir,
                None,
                format!("version numbers have a gap: {} is missing before v{n}.md", missing.join(", ")),
            ));
        }
        if let Some((prev_file, prev_front)) = previous {
            if front.effective < prev_front.effective {
                problems.push(Problem::new(
                    &file.path,
                    None,
                    format!(
                        "`effective` ({}) is earlier than that of v{} ({}): versions take effect in order",
                        front.effective.to_rfc3339(),
                        prev_file.number,
                        prev_front.effective.to_rfc3339()
                    ),
                ));
            }
            // A shorter period (or a first one) makes acceptances expire: only a material version,
            // which re-prompts anyway, may bring it (an editorial one never re-prompts anyone).
            let shorter = match (front.reaccept_after, prev_front.reaccept_after) {
                (Some(now), Some(before)) => now < before,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if shorter && !front.material {
                problems.push(Problem::new(
                    &file.path,
                    front.reaccept_after_line,
                    format!(
                        "`reaccept_after` is new or shorter than in v{}, which would make acceptances expire, but this \
                         version is editorial (`material: false`), which never re-prompts anyone: make it material",
                        prev_file.number
                    ),
                ));
            }
            // A part's acceptances live in its agreement's (and an agreement's in its own rows): a
            // document cannot become a part, stop being one, or move to another agreement.
            if front.part_of != prev_front.part_of {
                let says =
                    |p: &Option<Slug>| p.as_ref().map_or("no `part_of`".to_owned(), |s| format!("`part_of: {s}`"));
                problems.push(Problem::new(
                    &file.path,
                    front.part_of_line,
                    format!(
                        "{} differs from v{} ({}): a document stays part of the same agreement, or none, in every version \
                         (acceptances already recorded depend on it); publish a new document instead",
                        says(&front.part_of),
                        prev_file.number,
                        says(&prev_front.part_of)
                    ),
                ));
            }
            if prev_front.draft && !front.draft {
                problems.push(Problem::new(
                    &file.path,
                    None,
                    format!(
                        "v{} is a draft, so v{n} cannot be published after it: only the newest versions can be drafts",
                        prev_file.number
                    ),
                ));
            }
        }
        previous = Some(entry);
        expected = n + 1;
    }
}

fn attach_translations(
    versions: &mut [PolicyVersion],
    translations: Vec<(Locale, PolicyFile, TranslationFrontMatter)>,
    problems: &mut Vec<Problem>,
) {
    for (locale, file, front) in translations {
        let Some(version) = versions.iter_mut().find(|v| v.file.number == file.number) else {
            problems.push(Problem::new(
                &file.path,
                None,
                format!("a translation of v{} but there is no v{}.md", file.number, file.number),
            ));
            continue;
        };
        let original = &version.front;
        let r = &front.repeated;
        let mismatch = |key: &str, line: usize| {
            Problem::new(
                &file.path,
                Some(line),
                format!(
                    "`{key}` differs from v{}.md: a translation takes it from the original (leave it out)",
                    file.number
                ),
            )
        };
        let before = problems.len();
        let differs = [
            ("effective", r.effective.map(|(v, l)| (v != original.effective, l))),
            ("material", r.material.map(|(v, l)| (v != original.material, l))),
            ("part_of", r.part_of.as_ref().map(|(v, l)| (*v != original.part_of, *l))),
            ("acceptance", r.acceptance.map(|(v, l)| (v != original.acceptance, l))),
            ("draft", r.draft.map(|(v, l)| (v != original.draft, l))),
            ("audiences", r.audiences.as_ref().map(|(v, l)| (*v != original.audiences, *l))),
            ("reaccept_after", r.reaccept_after.map(|(v, l)| (Some(v) != original.reaccept_after, l))),
        ];
        for (key, check) in differs {
            if let Some((true, line)) = check {
                problems.push(mismatch(key, line));
            }
        }
        if problems.len() == before {
            version.translations.push(PolicyTranslation { file, locale, front });
        }
    }
}

/// `part_of` must name another document of the folder and must not loop.
fn check_part_of(documents: &[PolicyDocument], broken: &[Slug], problems: &mut Vec<Problem>) {
    let parent: HashMap<&Slug, (&Slug, &Path, Option<usize>)> = documents
        .iter()
        .filter_map(|d| {
            let latest = d.publishable().last()?;
            let target = latest.front.part_of.as_ref()?;
            Some((&d.slug, (target, latest.file.path.as_path(), latest.front.part_of_line)))
        })
        .collect();
    for doc in documents {
        let Some(&(target, path, line)) = parent.get(&doc.slug) else {
            continue;
        };
        if broken.contains(target) {
            continue;
        }
        if !documents.iter().any(|d| &d.slug == target) {
            problems.push(Problem::new(
                path,
                line,
                format!("`part_of: {target}` names no document in the policy folder"),
            ));
            continue;
        }
        let mut seen = vec![&doc.slug];
        let mut at = target;
        loop {
            if seen.contains(&at) {
                let chain: Vec<&str> = seen.iter().map(|s| s.as_str()).chain([at.as_str()]).collect();
                problems.push(Problem::new(path, line, format!("`part_of` makes a cycle: {}", chain.join(" → "))));
                break;
            }
            seen.push(at);
            match parent.get(at) {
                Some((next, _, _)) => at = next,
                None => break,
            }
        }
        // A part is accepted with its agreement, so it must speak to the same people.
        let (Some(part), Some(agreement)) = (
            doc.publishable().last(),
            documents.iter().find(|d| &d.slug == target).and_then(|d| d.publishable().last()),
        ) else {
            continue;
        };
        if part.front.audiences != agreement.front.audiences {
            let names = |a: &[crate::domain::Audience]| {
                if a.is_empty() {
                    "everyone (no `audiences`)".to_owned()
                } else {
                    a.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
                }
            };
            problems.push(Problem::new(
                path,
                part.front.audiences_line.or(line),
                format!(
                    "`audiences` ({}) differs from that of `{target}` ({}), which this document is part of: a part is \
                     accepted with its agreement, so give both the same audiences",
                    names(&part.front.audiences),
                    names(&agreement.front.audiences)
                ),
            ));
        }
    }
}
