//! Checkpoints as C2SP `tlog-checkpoint` notes, signed as C2SP `signed-note` says, with Ed25519.
//! Key strings use the Go `note` package's forms, so its tools read them:
//! signer `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`, verifier
//! `<name>+<hash>+<base64(0x01 || public key)>`, where `hash` is the first four bytes of
//! `SHA-256(name || "\n" || 0x01 || public key)` in hex.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::tree::Hash;

/// The Ed25519 algorithm byte of signed-note keys.
const ED25519: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoteError(pub String);

fn err(message: impl Into<String>) -> NoteError {
    NoteError(message.into())
}

/// A key name: non-empty, no spaces or `+` (signed-note).
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(err(format!("`{name}` is not a key name: it must be non-empty, without spaces or `+`")));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The log's signing key and the name its signatures carry.
#[derive(Clone)]
pub struct LogKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LogKey {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    /// Reads `PRIVATE+KEY+<name>+<hash>+<base64>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| err("a log key starts with `PRIVATE+KEY+` (the Go note package's signer key form)"))?;
        // The name holds no `+`; the base64 may.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err("a log key is PRIVATE+KEY+<name>+<hash>+<base64>"));
        };
        let bytes = STANDARD.decode(b64).map_err(|_| err("the log key's last part is not base64"))?;
        let Some((&ED25519, seed)) = bytes.split_first() else {
            return Err(err("the log key is not an Ed25519 key (algorithm byte 0x01)"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| err("an Ed25519 log key holds 32 bytes"))?;
        let key = Self::from_seed(name, seed)?;
        if hex::encode(key.id()) != hash.to_ascii_lowercase() {
            return Err(err("the log key's hash does not match its name and key"));
        }
        Ok(key)
    }

    /// The signer key string (secret).
    pub fn to_private_string(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex::encode(self.id()), STANDARD.encode(bytes))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn id(&self) -> [u8; 4] {
        key_id(&self.name, &self.public())
    }

    /// The verifier key string that auditors pin.
    pub fn verifier(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(&self.public());
        format!("{}+{}+{}", self.name, hex::encode(self.id()), STANDARD.encode(bytes))
    }

    /// Signs `text` (which ends in a newline) as a signed note.
    pub fn sign_note(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        let mut blob = self.id().to_vec();
        blob.extend_from_slice(&signature);
        format!("{text}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }

    /// The checkpoint of a tree: origin (the key's name), size, root.
    pub fn checkpoint(&self, size: u64, root: &Hash) -> String {
        self.sign_note(&checkpoint_body(&self.name, size, root))
    }
}

fn checkpoint_body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
}

/// A verifier key read from its string form.
#[derive(Debug, Clone)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err("a verifier key is <name>+<hash>+<base64>"));
        };
        check_name(name)?;
        let bytes = STANDARD.decode(b64).map_err(|_| err("the verifier key's last part is not base64"))?;
        let Some((&ED25519, public)) = bytes.split_first() else {
            return Err(err("the verifier key is not an Ed25519 key"));
        };
        let public: [u8; 32] = public.try_into().map_err(|_| err("an Ed25519 verifier key holds 32 bytes"))?;
        let id = key_id(name, &public);
        if hex::encode(id) != hash.to_ascii_lowercase() {
            return Err(err("the verifier key's hash does not match its name and key"));
        }
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| err("the verifier key is not a valid Ed25519 point"))?;
        Ok(Self { name: name.to_owned(), id, key })
    }
}

/// A checkpoint whose signature held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a checkpoint cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Not a checkpoint signed with this key at all: another file, another log's key, or line
    /// ends changed (a checkpoint's lines end in LF).
    #[error("{0}")]
    Unreadable(#[from] NoteError),
    /// Signed by this key's name and id, but the signature fails: its text was altered.
    #[error("{0}")]
    Altered(NoteError),
}

/// Reads a signed checkpoint and checks that `verifier` signed it.
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
    let (text, signatures) =
        note.split_once("\n\n").ok_or_else(|| err("not a signed note: no blank line before the signatures"))?;
    let text = format!("{text}\n");
    let mut signed = false;
    for line in signatures.lines().filter(|l| !l.is_empty()) {
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| err(format!("not a signature line: `{line}`")))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| err(format!("not a signature line: `{line}`")))?;
        if name != verifier.name {
            continue;
        }
        let blob = STANDARD.decode(b64).map_err(|_| err("a signature is not base64"))?;
        if blob.len() != 68 || blob[..4] != verifier.id {
            continue;
        }
        let signature = ed25519_dalek::Signature::from_slice(&blob[4..]).map_err(|_| err("a malformed signature"))?;
        verifier.key.verify(text.as_bytes(), &signature).map_err(|_| {
            CheckpointError::Altered(err(format!(
                "the signature of `{name}` does not verify: the checkpoint was altered"
            )))
        })?;
        signed = true;
    }
    if !signed {
        return Err(err(format!("the checkpoint carries no signature by `{}`", verifier.name)).into());
    }
    let mut lines = text.lines();
    let origin = lines.next().unwrap_or_default().to_owned();
    let size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| err("the checkpoint's second line is not a tree size"))?;
    let root: Hash = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| err("the checkpoint's third line is not a base64 SHA-256 root"))?;
    Ok(Checkpoint { origin, size, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_checkpoints_verify() {
        let key = LogKey::from_seed("example.com/log", [7; 32]).unwrap();
        let again = LogKey::parse(&key.to_private_string()).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        let verifier = NoteVerifier::parse(&key.verifier()).unwrap();
        let note = key.checkpoint(5, &[9; 32]);
        assert!(note.starts_with("example.com/log\n5\nCQkJ"), "{note}");
        assert!(note.contains("\n\n\u{2014} example.com/log "), "{note}");
        let cp = open_checkpoint(&note, &verifier).unwrap();
        assert_eq!((cp.size, cp.root), (5, [9; 32]));
        let forged = note.replacen("\n5\n", "\n6\n", 1);
        assert!(open_checkpoint(&forged, &verifier).is_err());
        let other = NoteVerifier::parse(&LogKey::from_seed("example.com/log", [8; 32]).unwrap().verifier()).unwrap();
        assert!(open_checkpoint(&note, &other).is_err());
        assert!(LogKey::parse("PRIVATE+KEY+a b+00+AQ==").is_err());
    }

    /// The Go note package's own example key pair (golang.org/x/mod/sumdb/note, `ExampleSign`).
    #[test]
    fn reads_the_go_note_packages_key_forms() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let key = LogKey::parse(skey).unwrap();
        assert_eq!(key.verifier(), vkey);
        // The package documents this exact signed note for the text "If you think cryptography
        // is the answer to your problem,\nthen you don't know what your problem is.\n".
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let note = key.sign_note(text);
        assert_eq!(
            note,
            format!(
                "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
    }
}
