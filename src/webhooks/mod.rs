//! Webhooks (contract §9): telling host applications what happened without their asking.
//!
//! - **The outbox.** Every event and every published version writes one delivery row per
//!   endpoint subscribed to its type, in its own transaction (`ledger::append`, `policies::sync`):
//!   a delivery exists exactly when what it announces committed.
//! - **Delivery** ([`deliver`]) runs on a thread of its own, holding no transaction while it
//!   waits on an endpoint, so a slow or dead endpoint never slows recording. Each server takes
//!   due deliveries under a lease (`db::webhooks::claim`), so each is sent by one server at a
//!   time; a server that dies mid-way leaves its deliveries due again once the lease has passed.
//!   At least once: a delivery is retried on any non-2xx answer, timeout or connection failure,
//!   with growing, jittered delays, for the retry period (24 hours), then marked `failed`; a
//!   failed one can be retried by hand (API, CLI, admin view).
//! - **What is sent** is read when it is sent, from the event or version the delivery names: the
//!   receipt of an event (no IP address or user agent), or the version's metadata. So an erasure
//!   reaches deliveries still waiting: they go out with `subject: null`. Only an erasure's own
//!   delivery keeps the subject id, which the erased event no longer holds, until it is
//!   delivered (or its endpoint removed).
//! - **Signed** as Standard Webhooks specifies: `webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
//! - **Only public addresses** unless allowed ([`address`]).
//!
//! This module holds the rules and the service functions that every front end calls (the API,
//! the CLI and the admin view); `db::webhooks` holds the rows.

pub mod address;
pub mod deliver;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::db::webhooks::{self as rows, DeliveryRow, EndpointRow};
use crate::db::{DbConnection, DbError, from_stored_time, to_stored_time};
use crate::views::rfc3339;

/// What an endpoint can subscribe to: the kinds of event, and new versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Accepted,
    Declined,
    Withdrawn,
    Erased,
    ErasureRequested,
    /// A new version (or translation) was published.
    Published,
}

impl EventType {
    pub const ALL: [Self; 6] =
        [Self::Accepted, Self::Declined, Self::Withdrawn, Self::Erased, Self::ErasureRequested, Self::Published];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
            Self::Erased => "erased",
            Self::ErasureRequested => "erasure_requested",
            Self::Published => "published",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// The type that announces an event of `kind`.
    pub fn of(kind: crate::ledger::Kind) -> Self {
        use crate::ledger::Kind;
        match kind {
            Kind::Accepted => Self::Accepted,
            Kind::Declined => Self::Declined,
            Kind::Withdrawn => Self::Withdrawn,
            Kind::Erased => Self::Erased,
            Kind::ErasureRequested => Self::ErasureRequested,
        }
    }
}

/// The types an endpoint subscribes to: at least one, each once, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription(Vec<EventType>);

impl Subscription {
    /// From names such as `accepted` (the command line's `--events accepted,erased`).
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, WebhookError> {
        let mut types = Vec::new();
        for name in raw {
            let name = name.as_ref().trim();
            let t = EventType::parse(name).ok_or_else(|| {
                WebhookError::UnknownEvent(format!(
                    "unknown event type `{name}`: use {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ))
            })?;
            types.push(t);
        }
        Self::new(types)
    }

    pub fn new(mut types: Vec<EventType>) -> Result<Self, WebhookError> {
        types.sort();
        types.dedup();
        if types.is_empty() {
            return Err(WebhookError::UnknownEvent(format!(
                "name at least one event type: {}",
                EventType::ALL.map(EventType::as_str).join(", ")
            )));
        }
        Ok(Self(types))
    }

    /// As stored: `,accepted,erased,` (see the migration).
    fn stored(&self) -> String {
        let mut s = String::from(",");
        for t in &self.0 {
            s.push_str(t.as_str());
            s.push(',');
        }
        s
    }

    fn from_stored(stored: &str) -> Vec<EventType> {
        stored.split(',').filter_map(EventType::parse).collect()
    }
}

/// Longest webhook URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// A webhook URL: `http` or `https`, with a host, at most 2 KiB.
#[derive(Debug, Clone)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        if raw.len() > MAX_URL_BYTES {
            return Err(WebhookError::Invalid(format!(
                "the URL is {} bytes long; at most {MAX_URL_BYTES} are accepted",
                raw.len()
            )));
        }
        let url = url::Url::parse(raw.trim())
            .map_err(|e| WebhookError::Invalid(format!("`{raw}` is not a URL ({e}): use https://host/path")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookError::Invalid(format!("a webhook URL must be http or https, not `{}`", url.scheme())));
        }
        if url.host().is_none() {
            return Err(WebhookError::Invalid("the URL has no host".into()));
        }
        // Credentials would be sent with every delivery and shown wherever endpoints are listed;
        // the signature is what proves a delivery came from Assent.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookError::Invalid(
                "a webhook URL may not carry a user name or password: deliveries are signed instead".into(),
            ));
        }
        // What is stored and sent is the normalised form, which percent-encoding can lengthen.
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(WebhookError::Invalid(format!(
                "the URL is {} bytes long once normalised; at most {MAX_URL_BYTES} are accepted",
                url.as_str().len()
            )));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Refuses a URL that leads to a private address, unless allowed (a DNS lookup: blocking).
    pub fn check_destination(&self, allow_private: bool) -> Result<(), WebhookError> {
        let host = self.0.host().ok_or_else(|| WebhookError::Invalid("the URL has no host".into()))?;
        let port = self.0.port_or_known_default().unwrap_or(80);
        address::check_resolved(&host, port, allow_private).map_err(|e| WebhookError::Invalid(e.to_string()))
    }
}

/// An endpoint's signing secret: 32 random bytes, shown as `whsec_` and their base64.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn generate() -> Result<Self, DbError> {
        Ok(Self(crate::ledger::keys::random_bytes::<32>()?.to_vec()))
    }

    pub fn parse(shown: &str) -> Option<Self> {
        let key = STANDARD.decode(shown.strip_prefix("whsec_")?).ok()?;
        (!key.is_empty()).then_some(Self(key))
    }

    pub fn shown(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// When to try again after a failure (`ASSENT_WEBHOOK_RETRY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay; each later one is about as long as the time already spent retrying
    /// (so delays double), up to `longest`.
    pub first: Duration,
    pub longest: Duration,
    /// How long to keep trying, from the first write (or a manual retry): then `failed`.
    pub period: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(10),
            longest: Duration::from_secs(3600),
            period: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// After a failed attempt at `now`: when to try next, or `None` to give up. `jitter` in
    /// `[0, 1)` spreads the delay over ±25%, so that endpoints coming back are not hit by every
    /// waiting delivery at once.
    pub fn next(&self, retry_since: DateTime<Utc>, now: DateTime<Utc>, jitter: f64) -> Option<DateTime<Utc>> {
        let spent = (now - retry_since).to_std().unwrap_or_default();
        if spent >= self.period {
            return None;
        }
        let delay = spent.clamp(self.first, self.longest.max(self.first)).mul_f64(0.75 + jitter.clamp(0.0, 1.0) / 2.0);
        Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
    }
}

/// The webhook settings (`ASSENT_WEBHOOK_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether loopback and private addresses may be called (`ASSENT_WEBHOOK_ALLOW_PRIVATE=1`).
    pub allow_private: bool,
    /// How long an endpoint has to answer (10 s; shorter in tests).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { allow_private: false, timeout: Duration::from_secs(10), retry: RetryPolicy::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A URL that is malformed, too long, or leads somewhere it may not.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    UnknownEvent(String),
    /// Another value that does not parse (a delivery state).
    #[error("{0}")]
    BadValue(String),
    #[error("there is no webhook endpoint {0}")]
    NoEndpoint(i64),
    #[error("endpoint {endpoint} has no failed delivery {delivery}")]
    NoFailedDelivery { endpoint: i64, delivery: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for WebhookError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// An endpoint as listed (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: String,
    /// The API key's name, or `cli:$USER`.
    pub created_by: String,
    /// Deliveries waiting to be sent or retried.
    pub pending: i64,
    /// Deliveries given up on (retry them with `POST /api/v1/webhooks/{id}/retry`).
    pub failed: i64,
}

/// A new endpoint, with its secret: shown only now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Registered {
    pub id: i64,
    pub url: String,
    pub events: Vec<EventType>,
    /// `whsec_…`: verifies the `webhook-signature` of every delivery (Standard Webhooks).
    pub secret: String,
    pub created_at: String,
}

fn endpoint_of(row: &EndpointRow, (pending, failed): (i64, i64)) -> Endpoint {
    Endpoint {
        id: row.id,
        url: row.url.clone(),
        events: Subscription::from_stored(&row.events),
        created_at: rfc3339(from_stored_time(row.created_at)),
        created_by: row.created_by.clone(),
        pending,
        failed,
    }
}

/// Registers an endpoint: checks the URL (and where it leads, with a DNS lookup), then stores it
/// with a new secret.
pub fn register(
    conn: &mut DbConnection,
    url: &str,
    subscription: Subscription,
    created_by: &str,
    allow_private: bool,
    now: DateTime<Utc>,
) -> Result<Registered, WebhookError> {
    let url = WebhookUrl::parse(url)?;
    url.check_destination(allow_private)?;
    let secret = Secret::generate()?;
    let row = rows::insert_endpoint(
        conn,
        url.as_str(),
        &subscription.stored(),
        &secret.shown(),
        created_by,
        to_stored_time(now),
    )?;
    Ok(Registered {
        id: row.id,
        url: row.url,
        events: subscription.0,
        secret: secret.shown(),
        created_at: rfc3339(from_stored_time(row.created_at)),
    })
}

/// Every endpoint not removed, with how many deliveries wait and how many failed.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Endpoint>, WebhookError> {
    let mut out = Vec::new();
    for row in rows::endpoints(conn)? {
        let counts = rows::open_counts(conn, Some(row.id))?;
        out.push(endpoint_of(&row, counts));
    }
    Ok(out)
}

/// One endpoint not removed.
pub fn endpoint(conn: &mut DbConnection, id: i64) -> Result<Endpoint, WebhookError> {
    let row = live(conn, id)?;
    let counts = rows::open_counts(conn, Some(id))?;
    Ok(endpoint_of(&row, counts))
}

fn live(conn: &mut DbConnection, id: i64) -> Result<EndpointRow, WebhookError> {
    rows::endpoint(conn, id)?.filter(|e| e.removed_at.is_none()).ok_or(WebhookError::NoEndpoint(id))
}

/// Removes an endpoint: nothing more is written or sent to it; what was waiting is cancelled.
pub fn remove(conn: &mut DbConnection, id: i64, now: DateTime<Utc>) -> Result<(), WebhookError> {
    if rows::remove_endpoint(conn, id, to_stored_time(now))? { Ok(()) } else { Err(WebhookError::NoEndpoint(id)) }
}

/// Makes failed deliveries pending again, due now, with a new retry period: one, or every
/// failed delivery of the endpoint. Returns how many.
pub fn retry(
    conn: &mut DbConnection,
    endpoint_id: i64,
    delivery: Option<i64>,
    now: DateTime<Utc>,
) -> Result<usize, WebhookError> {
    live(conn, endpoint_id)?;
    let n = rows::retry_failed(conn, endpoint_id, delivery, to_stored_time(now))?;
    match delivery {
        Some(id) if n == 0 => Err(WebhookError::NoFailedDelivery { endpoint: endpoint_id, delivery: id }),
        _ => Ok(n),
    }
}

/// A delivery in the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// The `webhook-id` header it is sent with (the same on every attempt).
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The event announced (none for `published`).
    pub event_id: Option<i64>,
    /// `pending`, `delivered`, `failed` (given up: retry it by hand) or `cancelled` (its
    /// endpoint was removed).
    pub state: String,
    pub attempts: i32,
    pub created_at: String,
    pub last_attempt_at: Option<String>,
    /// The HTTP status of the last answer; none when there was no answer.
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}

/// The `webhook-id` of a delivery.
pub fn webhook_id(delivery_id: i64) -> String {
    format!("msg_{delivery_id}")
}

fn delivery_of(row: &DeliveryRow) -> Delivery {
    let time = |t: Option<chrono::NaiveDateTime>| t.map(|t| rfc3339(from_stored_time(t)));
    Delivery {
        id: row.id,
        webhook_id: webhook_id(row.id),
        event_type: EventType::parse(&row.event_type).unwrap_or(EventType::Published),
        event_id: row.event_id,
        state: row.state.clone(),
        attempts: row.attempts,
        created_at: rfc3339(from_stored_time(row.created_at)),
        last_attempt_at: time(row.last_attempt_at),
        last_status: row.last_status,
        last_error: row.last_error.clone(),
        // While a server holds it, it is not waiting: its next time is the lease's end.
        next_attempt_at: if row.state == "pending" && row.lease.is_none() { time(row.next_attempt_at) } else { None },
        delivered_at: time(row.delivered_at),
    }
}

/// The states a delivery can be in (for filters).
pub const STATES: [&str; 4] = ["pending", "delivered", "failed", "cancelled"];

/// A page of an endpoint's delivery log, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// Pass as `before` for the next (older) page; null when there is none.
    pub next: Option<String>,
}

/// An endpoint's deliveries, newest first, optionally of one state, below the delivery id
/// `before`.
pub fn deliveries(
    conn: &mut DbConnection,
    endpoint_id: i64,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<DeliveryPage, WebhookError> {
    if let Some(s) = state
        && !STATES.contains(&s)
    {
        return Err(WebhookError::BadValue(format!("unknown state `{s}`: use {}", STATES.join(", "))));
    }
    rows::endpoint(conn, endpoint_id)?.ok_or(WebhookError::NoEndpoint(endpoint_id))?;
    let found = rows::deliveries(conn, endpoint_id, state, before, limit)?;
    let next = (found.len() as i64 == limit).then(|| found.last().map(|d| d.id.to_string())).flatten();
    Ok(DeliveryPage { deliveries: found.iter().map(delivery_of).collect(), next })
}

/// What a delivery's body carries.
#[derive(Serialize)]
struct Message<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: &'a str,
    /// When the event was recorded or the version published.
    timestamp: String,
    data: T,
}

/// A published version, as announced.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedData {
    pub document: String,
    pub version: i32,
    /// The translation's locale; null for the original.
    pub locale: Option<String>,
    pub title: String,
    pub effective: String,
    pub material: bool,
    pub summary: Option<String>,
    pub sha256: String,
    pub published_at: String,
}

/// The bodies of `deliveries`, by delivery id, read now from what each names. A delivery whose
/// event or version cannot be found gets no body (it is reported, and retried like a failure).
pub fn bodies(conn: &mut DbConnection, deliveries: &[DeliveryRow]) -> Result<HashMap<i64, String>, DbError> {
    let event_ids: Vec<i64> = deliveries.iter().filter_map(|d| d.event_id).collect();
    let version_ids: Vec<i64> = deliveries.iter().filter_map(|d| d.version_id).collect();
    let mut events = HashMap::new();
    for chunk in event_ids.chunks(500) {
        events.extend(rows::events_by_id(conn, chunk)?.into_iter().map(|e| (e.row.id, e)));
    }
    let mut versions = HashMap::new();
    for chunk in version_ids.chunks(500) {
        versions.extend(rows::published_versions(conn, chunk)?.into_iter().map(|v| (v.id, v)));
    }
    let mut out = HashMap::new();
    for d in deliveries {
        let body = if let Some(event) = d.event_id.and_then(|id| events.get(&id)) {
            let mut receipt = crate::ledger::receipt(event)?;
            if receipt.subject.is_none() {
                // An erasure's own delivery carries the subject id it kept for this.
                receipt.subject = d.subject.clone();
            }
            let message = Message { event_type: &d.event_type, timestamp: receipt.recorded_at.clone(), data: receipt };
            serde_json::to_string(&message)
        } else if let Some(v) = d.version_id.and_then(|id| versions.get(&id)) {
            let data = PublishedData {
                document: v.document.clone(),
                version: v.version,
                locale: (!v.locale.is_empty()).then(|| v.locale.clone()),
                title: v.title.clone(),
                effective: rfc3339(from_stored_time(v.effective)),
                material: v.material,
                summary: v.summary.clone(),
                sha256: v.sha256.clone(),
                published_at: rfc3339(from_stored_time(v.published_at)),
            };
            let message = Message { event_type: "published", timestamp: data.published_at.clone(), data };
            serde_json::to_string(&message)
        } else {
            continue;
        };
        out.insert(d.id, body.map_err(|e| DbError::Corrupt(format!("delivery {}: {e}", d.id)))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(Secret::parse("nope").is_none());
        let fresh = Secret::generate().unwrap();
        assert!(fresh.shown().starts_with("whsec_"));
        assert_eq!(Secret::parse(&fresh.shown()).unwrap().0, fresh.0);
    }

    #[test]
    fn subscriptions_refuse_unknown_types_and_keep_each_once() {
        let s = Subscription::parse(&["erased", "accepted", "accepted"]).unwrap();
        assert_eq!(s.stored(), ",accepted,erased,");
        assert_eq!(Subscription::from_stored(&s.stored()), vec![EventType::Accepted, EventType::Erased]);
        assert!(matches!(Subscription::parse(&["accepted", "signed"]), Err(WebhookError::UnknownEvent(_))));
        assert!(matches!(Subscription::parse::<&str>(&[]), Err(WebhookError::UnknownEvent(_))));
    }

    #[test]
    fn urls_must_be_http_and_short() {
        assert!(WebhookUrl::parse("https://hooks.example.com/assent").is_ok());
        for bad in ["ftp://example.com/", "javascript:alert(1)", "not a url", "file:///etc/passwd", "https://"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn retries_back_off_and_stop_after_the_period() {
        let p = RetryPolicy::default();
        let start = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
        // The first delay is `first` (±25%).
        let next = p.next(start, start, 0.5).unwrap();
        assert_eq!(next - start, chrono::Duration::seconds(10));
        let low = p.next(start, start, 0.0).unwrap();
        assert_eq!(low - start, chrono::Duration::milliseconds(7500));
        // Later delays grow with the time spent, up to an hour.
        let later = start + chrono::Duration::minutes(20);
        assert_eq!(p.next(start, later, 0.5).unwrap() - later, chrono::Duration::minutes(20));
        let late = start + chrono::Duration::hours(5);
        assert_eq!(p.next(start, late, 0.5).unwrap() - late, chrono::Duration::hours(1));
        // Trying goes on for 24 hours, then stops.
        assert!(p.next(start, start + chrono::Duration::hours(23), 0.99).is_some());
        assert!(p.next(start, start + chrono::Duration::hours(24), 0.0).is_none());
        // Walked through: about 30 attempts over the day.
        let (mut at, mut attempts) = (start, 1);
        while let Some(n) = p.next(start, at, 0.5) {
            at = n;
            attempts += 1;
        }
        assert!((25..40).contains(&attempts), "{attempts} attempts");
        assert!(at - start >= chrono::Duration::hours(24));
    }
}
