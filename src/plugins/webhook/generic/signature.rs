//! Standard Webhooks signing: the `whsec_` secret, the `webhook-id` derived from an event id,
//! and `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

/// The prefix Standard Webhooks puts before the base64 of a symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest secret the spec allows: "at least 24 bytes (192 bits)".
pub const MIN_SECRET_BYTES: usize = 24;

/// Header with the delivery's id; the same on every attempt, so receivers can deduplicate.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Header with the attempt's time, unix seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header with the signature(s), `v1,<base64>`.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The longest event id used verbatim as `webhook-id` (the API accepts ids up to 200 characters).
const MAX_VERBATIM_ID: usize = 200;

/// Base64 as Standard Webhooks writes it (standard alphabet). Padding is optional on input:
/// some tools print secrets without it, and the bytes are the same either way.
const BASE64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Why a configured secret cannot be used. The text never quotes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No `whsec_` in front.
    #[error("must start with `whsec_` followed by the base64 secret your receiver gave you")]
    MissingPrefix,
    /// The part after `whsec_` is not base64.
    #[error("the part after `whsec_` is not valid base64 (standard alphabet: A-Z a-z 0-9 + /, optional = padding)")]
    NotBase64,
    /// It decodes to fewer bytes than the spec's minimum.
    #[error(
        "decodes to {0} bytes; Standard Webhooks secrets are at least {MIN_SECRET_BYTES} random \
         bytes (32 base64 characters), e.g. `whsec_$(openssl rand -base64 32)`"
    )]
    TooShort(usize),
}

/// The HMAC key: the bytes behind `whsec_`. Its `Debug` shows nothing of them.
#[derive(Clone)]
pub struct SigningSecret(SecretSlice<u8>);

impl SigningSecret {
    /// Parses `whsec_<base64>` (surrounding whitespace ignored, as a value read from an
    /// environment variable may end in a newline).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let bytes = BASE64_LENIENT
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(SigningSecret(bytes.into()))
    }

    /// The `webhook-signature` value for one attempt: `v1,` and the base64 of
    /// HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`, with `body` the exact bytes sent.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// The `webhook-id` for an event: the event id itself when it is 1 to 200 characters of
/// `[A-Za-z0-9_-]` (generated ids are UUIDs, so receivers can match it to the body's `id`),
/// else `evt_` and 32 hex digits of its SHA-256.
///
/// Derived, not stored, so every attempt and every redelivery of the same event by the
/// supervisor carries the same id. The hash keeps caller-chosen ids out of the signed
/// prefix when they hold a `.` (the spec forbids it there: `a.1` + `2` and `a` + `1.2` would
/// sign the same text) or anything a header cannot carry.
pub fn webhook_id(event_id: &str) -> String {
    let verbatim = (1..=MAX_VERBATIM_ID).contains(&event_id.len())
        && event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if verbatim {
        return event_id.to_owned();
    }
    let digest = Sha256::digest(event_id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example secret from the Standard Webhooks spec and libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn secret(s: &str) -> SigningSecret {
        SigningSecret::parse(s).expect("valid secret")
    }

    // The expected values below were computed once, independently of this code, with
    // Python's standard library on this machine:
    //   key = base64.b64decode(secret[len("whsec_"):])
    //   "v1," + base64.b64encode(hmac.new(key, f"{id}.{ts}.".encode() + body.encode("utf-8"),
    //                                     hashlib.sha256).digest()).decode()
    // The first also equals the test vector the Standard Webhooks reference libraries use.

    #[test]
    fn signs_the_spec_example_known_answer() {
        let sig = secret(SPEC_SECRET).sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn signs_a_unicode_body_as_its_utf8_bytes_known_answer() {
        let body = r#"{"type":"after_media_added","id":"0f8fad5b-d9cb-469f-a165-70867728950e","timestamp":"2024-03-01T12:00:00Z","data":{"media_item":{"title":"Amélie — 千と千尋の神隠し 🎬"}}}"#;
        assert_eq!(body.len(), 183, "the bytes Python signed");
        let sig = secret(SPEC_SECRET).sign(
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            1709294400,
            body.as_bytes(),
        );
        assert_eq!(sig, "v1,FXC/pdNxm+9dt6cLPrQeY+ZZCe5tQHO/f1Gis6qmyS0=");
    }

    #[test]
    fn signs_an_empty_body_with_a_32_byte_key_known_answer() {
        // bytes 0..32, as base64
        let key = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        assert_eq!(
            secret(key).sign("evt_x", 0, b""),
            "v1,LDfLfJK3SSWpVuspSsUHuZ/Z4+8TVk7IGw8WDA/U+Ns="
        );
        let unpadded = key.trim_end_matches('=');
        assert_eq!(
            secret(&format!("  {unpadded}\n")).sign("evt_x", 0, b""),
            "v1,LDfLfJK3SSWpVuspSsUHuZ/Z4+8TVk7IGw8WDA/U+Ns=",
            "padding and surrounding whitespace do not change the key"
        );
    }

    #[test]
    fn every_input_changes_the_signature() {
        let s = secret(SPEC_SECRET);
        let base = s.sign("msg_1", 100, b"{}");
        assert_ne!(base, s.sign("msg_2", 100, b"{}"));
        assert_ne!(base, s.sign("msg_1", 101, b"{}"));
        assert_ne!(base, s.sign("msg_1", 100, b"{ }"));
        let other = secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        assert_ne!(base, other.sign("msg_1", 100, b"{}"));
    }

    #[test]
    fn refuses_bad_secrets_without_quoting_them() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            SigningSecret::parse("whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            SigningSecret::parse("whsec_not*base64!SECRETCANARY").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::TooShort(5)
        );
        assert_eq!(
            SigningSecret::parse("whsec_").unwrap_err(),
            SecretError::TooShort(0)
        );
        let shown = SecretError::NotBase64.to_string();
        assert!(!shown.contains("SECRETCANARY"));
        assert_eq!(
            format!("{:?}", secret(SPEC_SECRET)),
            "SigningSecret([redacted])"
        );
    }

    #[test]
    fn webhook_id_is_the_event_id_when_header_safe_else_a_stable_hash() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(webhook_id(uuid), uuid);
        assert_eq!(
            webhook_id("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        );
        // sha256("a.b c") from Python's hashlib, first 16 bytes in hex.
        assert_eq!(webhook_id("a.b c"), "evt_8640d2e22c0699815cacc519ee3f91ad");
        assert_eq!(webhook_id("a.b c"), webhook_id("a.b c"), "stable");
        for unsafe_id in ["", "a.b", "ünïcode", "line\nbreak", &"x".repeat(201)] {
            let id = webhook_id(unsafe_id);
            assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
            assert!(!id.contains('.'));
        }
        assert_eq!(webhook_id(&"x".repeat(200)), "x".repeat(200));
    }
}
