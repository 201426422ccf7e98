//! What the OpenAPI document says of values the API reads as text and checks itself: exactly the
//! values it accepts, so that a request the document calls valid is one the API takes (the
//! schemathesis run in CI holds both to that). No handler builds these; they describe.
//!
//! Limits the API counts in bytes (a subject id's 256, an idempotency key's 200) are given as
//! `maxLength`, which counts characters: equal for ASCII, looser for other text (README, "Fuzzing
//! the API").

use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{RefOr, schema::SchemaType};

fn text(format: Option<KnownFormat>, max_length: Option<usize>) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(format.map(SchemaFormat::KnownFormat))
            .max_length(max_length)
            .build(),
    )
}

/// A date (`2026-01-01`, midnight UTC) or an RFC 3339 time; empty means none.
pub struct DateOrTime;

impl utoipa::PartialSchema for DateOrTime {
    fn schema() -> RefOr<Schema> {
        Schema::AnyOf(
            AnyOfBuilder::new()
                .item(text(Some(KnownFormat::Date), None))
                .item(text(Some(KnownFormat::DateTime), None))
                .item(text(None, Some(0)))
                .description(Some("A date (midnight UTC) or an RFC 3339 time; empty means none"))
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for DateOrTime {}

/// An IPv4 or IPv6 address; empty or null means none.
pub struct IpAddress;

impl utoipa::PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        Schema::AnyOf(
            AnyOfBuilder::new()
                .item(text(Some(KnownFormat::Ipv4), None))
                .item(text(Some(KnownFormat::Ipv6), None))
                .item(text(None, Some(0)))
                .item(Schema::Object(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)).build()))
                .description(Some("The client's IP address, kept as `ASSENT_IP_MODE` says"))
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for IpAddress {}

/// `{slug}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SlugPath {
    /// The document's slug.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "service-agreement")]
    slug: String,
}

/// `{slug}` and `{version}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SlugVersionPath {
    /// The document's slug.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "service-agreement")]
    slug: String,
    /// A version number.
    #[param(pattern = "^[1-9][0-9]{0,8}$", example = "1")]
    version: String,
}

/// `{subject}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SubjectPath {
    /// The subject id: 1 to 256 bytes of UTF-8 without control characters, percent-encoded.
    #[param(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
    subject: String,
}

/// The event filters of `/events` and `/export`. Empty values mean no filter, as from a form.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventFilterParams {
    /// Only events about this document (a slug).
    #[param(pattern = "^([a-z0-9][a-z0-9-]{0,63})?$")]
    document: Option<String>,
    /// Only events deciding this version.
    #[param(pattern = "^([1-9][0-9]{0,8})?$")]
    version: Option<String>,
    /// Only events of this kind.
    #[param(pattern = "^(accepted|declined|withdrawn|erasure_requested|erased)?$")]
    kind: Option<String>,
    /// Only this subject's events (found by its keyed hash, erased or not).
    #[param(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    subject: Option<String>,
    /// Recorded at or after this moment.
    #[param(value_type = Option<DateOrTime>, inline)]
    since: Option<String>,
    /// Recorded before this moment.
    #[param(value_type = Option<DateOrTime>, inline)]
    until: Option<String>,
}

/// JSON Schema counts `244.0` as an integer, and so does the API: a whole number written with a
/// fraction of zero is read as that number (serde alone refuses it).
pub fn whole<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    let n = <serde_json::Number as serde::Deserialize>::deserialize(d)?;
    let value = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    value
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
}

/// [`whole`], for an optional field (`null` or absent is none).
pub fn whole_or_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    #[derive(serde::Deserialize)]
    struct Whole<T: TryFrom<i64>>(#[serde(deserialize_with = "whole")] T);
    Ok(<Option<Whole<T>> as serde::Deserialize>::deserialize(d)?.map(|w| w.0))
}
