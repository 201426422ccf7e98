//! Assent versions Markdown policies, renders them, shows what changed between versions, and
//! keeps a verifiable record of which version each subject accepted.
//!
//! How the crate is laid out (dependencies run one way, left to right):
//!
//! ```text
//! routes (HTTP, askama views) ──► domain (pure rules, typed values)
//!       │                              ▲
//!       └──────────► db (diesel) ──────┘        render (markdown) ◄── routes, policies
//! ```
//!
//! - [`domain`]: `Slug`, `VersionNumber`, `Locale`, the catalog and which version is current.
//! - [`policies`]: reading and validating the policy folder; `sync` publishes it.
//! - [`render`]: Markdown → sanitised HTML and a table of contents; block- and word-level diffs.
//! - [`changes`]: diffs between stored versions (cached), and what changed since a subject accepted.
//! - [`db`]: one connection type over SQLite and PostgreSQL, the pool, migrations, queries.
//! - [`ledger`]: decisions as append-only, hash-chained events; receipts; API keys; `verify`.
//! - [`crash`]: crash points for the crash tests (`ASSENT_CRASH_AT`).
//! - [`consent`]: signed consent links, allowed return origins, the client address behind proxies.
//! - [`webhooks`]: the outbox of deliveries, signing, retries, and where a webhook may be sent.
//! - [`routes`]: pages, JSON API, metrics; one route table.
//! - [`startup`]: builds the app and binds it; [`config`] holds the settings; [`cli`] the commands.

pub mod changes;
pub mod cli;
pub mod config;
pub mod consent;
pub mod coverage;
pub mod crash;
pub mod db;
pub mod domain;
pub mod freshness;
pub mod ledger;
pub mod log;
pub mod policies;
pub mod render;
pub mod routes;
pub mod sessions;
pub mod startup;
pub mod views;
pub mod webhooks;
