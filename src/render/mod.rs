//! Turning policy Markdown into safe HTML (and, later, diffs). Nothing here knows about HTTP or
//! the database.

pub mod diff;
pub mod markdown;

pub use markdown::{Rendered, SafeHtml, TocEntry, render};
