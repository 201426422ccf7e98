//! Hashes stored as their 32 bytes (`BYTEA`, `BLOB`), read and written as the lowercase hex
//! the rest of Assent uses. Rows name these columns `#[diesel(deserialize_as = Hex)]` (or
//! [`MaybeHex`]) on a `String` field; writes and filters pass [`bytes`] of the hex.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::sql_types::{Binary, Nullable};

use super::DbError;

/// A hash column read back as lowercase hex.
#[derive(Debug, FromSqlRow)]
pub struct Hex(pub String);

/// A nullable hash column read back as lowercase hex.
#[derive(Debug, FromSqlRow)]
pub struct MaybeHex(pub Option<String>);

fn encode(raw: &[u8]) -> String {
    match <&[u8; 32]>::try_from(raw) {
        Ok(hash) => crate::domain::hex32(hash),
        Err(_) => hex::encode(raw),
    }
}

impl<DB: Backend> FromSql<Binary, DB> for Hex
where
    Vec<u8>: FromSql<Binary, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Hex(encode(&Vec::<u8>::from_sql(bytes)?)))
    }
}

impl<DB: Backend> FromSql<Nullable<Binary>, DB> for MaybeHex
where
    Vec<u8>: FromSql<Binary, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(MaybeHex(Some(encode(&Vec::<u8>::from_sql(bytes)?))))
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        bytes.map_or(Ok(MaybeHex(None)), Self::from_sql)
    }
}

impl From<Hex> for String {
    fn from(h: Hex) -> String {
        h.0
    }
}

impl From<MaybeHex> for Option<String> {
    fn from(h: MaybeHex) -> Option<String> {
        h.0
    }
}

/// The bytes a hash in hex is stored as. Text that is not hex (a lookup by a value someone
/// typed) becomes its own bytes, which no stored 32-byte hash equals unless it has 32
/// characters; [`stored`] refuses it instead, for writes.
pub fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap_or_else(|_| hex.as_bytes().to_vec())
}

/// The bytes a hash in hex is stored as, for a write: text that is not hex is a bug upstream
/// and never reaches the database.
pub fn stored(hex: &str) -> Result<Vec<u8>, DbError> {
    hex::decode(hex).map_err(|_| DbError::Corrupt(format!("`{hex}` is not a hash in hex")))
}

/// [`stored`] of an optional hash.
pub fn stored_opt(hex: Option<&str>) -> Result<Option<Vec<u8>>, DbError> {
    hex.map(stored).transpose()
}
