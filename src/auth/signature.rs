//! Request authorization after authentication (spec §5.5): the
//! `?secret=` query parameter or the `Endpoint-Signature` HMAC of the body.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use http::request::Parts;
use sha2::Sha256;

use super::Secret;
use crate::protocol::{ApiError, ErrorCode};

/// The Data API's `validation_method`: what a request must prove besides
/// its credentials.
///
/// ```
/// use tower_data_api::auth::RequestValidation;
/// let check = RequestValidation::VerifyPayload("Super5ecr3tPa55w0rd".into());
/// let body = br#"{ "message": "Hello!" }"#;
/// let signature = tower_data_api::auth::payload_signature("Super5ecr3tPa55w0rd", body);
/// assert!(signature.starts_with("sha256=d4f0537d"));
/// # let _ = check;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RequestValidation {
    /// `NO_VALIDATION` (the default).
    #[default]
    None,
    /// `SECRET_AS_QUERY_PARAM`: the URL must carry `?secret=<value>`.
    SecretAsQueryParam(Secret),
    /// `VERIFY_PAYLOAD`: the `Endpoint-Signature: sha256=<hex>` header must
    /// be the HMAC-SHA256 of the raw body bytes under this secret.
    VerifyPayload(Secret),
}

impl fmt::Debug for RequestValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestValidation::None => "NO_VALIDATION",
            RequestValidation::SecretAsQueryParam(_) => "SECRET_AS_QUERY_PARAM",
            RequestValidation::VerifyPayload(_) => "VERIFY_PAYLOAD",
        })
    }
}

/// The header carrying the payload signature.
pub const SIGNATURE_HEADER: &str = "endpoint-signature";

impl RequestValidation {
    /// Parses a configuration value (`NO_VALIDATION`, `SECRET_AS_QUERY_PARAM`,
    /// `VERIFY_PAYLOAD`, any case) with its secret.
    pub fn from_config(method: &str, secret: Option<Secret>) -> Result<Self, String> {
        let needs_secret = |secret: Option<Secret>| {
            secret
                .filter(|s| !s.expose().is_empty())
                .ok_or_else(|| format!("validation method {method} needs a secret"))
        };
        match method.to_ascii_uppercase().as_str() {
            "NO_VALIDATION" => Ok(RequestValidation::None),
            "SECRET_AS_QUERY_PARAM" => {
                Ok(RequestValidation::SecretAsQueryParam(needs_secret(secret)?))
            }
            "VERIFY_PAYLOAD" => Ok(RequestValidation::VerifyPayload(needs_secret(secret)?)),
            other => Err(format!(
                "unknown validation method '{other}', expected NO_VALIDATION, \
                 SECRET_AS_QUERY_PARAM or VERIFY_PAYLOAD"
            )),
        }
    }

    /// Whether a secret is configured but empty.
    pub(crate) fn is_valid(&self) -> bool {
        match self {
            RequestValidation::None => true,
            RequestValidation::SecretAsQueryParam(s) | RequestValidation::VerifyPayload(s) => {
                !s.expose().is_empty()
            }
        }
    }

    /// Checks a request whose body has been read; 401 when it fails.
    pub(crate) fn check(&self, parts: &Parts, body: &[u8]) -> Result<(), ApiError> {
        let ok = match self {
            RequestValidation::None => true,
            RequestValidation::SecretAsQueryParam(secret) => {
                query_secret(parts).is_some_and(|given| secret.matches(&given))
            }
            RequestValidation::VerifyPayload(secret) => parts
                .headers
                .get(SIGNATURE_HEADER)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| signature_matches(secret, value, body)),
        };
        ok.then_some(()).ok_or_else(|| self.failure())
    }

    fn failure(&self) -> ApiError {
        let message = match self {
            RequestValidation::VerifyPayload(_) => {
                "failed to validate request: invalid payload signature"
            }
            _ => "failed to validate request: invalid secret",
        };
        ApiError::new(
            http::StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidSession,
            message,
        )
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the `Endpoint-Signature` value a
/// client sends.
pub fn payload_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn signature_matches(secret: &Secret, header: &str, body: &[u8]) -> bool {
    let header = header.trim();
    // Old docs wrote `sha256=` after a double colon; accept the prefix in any case.
    let Some(hex_part) = header
        .get(..7)
        .filter(|prefix| prefix.eq_ignore_ascii_case("sha256="))
        .map(|_| &header[7..])
    else {
        return false;
    };
    let Ok(given) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

/// The decoded value of the `secret` query parameter.
fn query_secret(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "secret").then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                // Two hex digits exactly: `from_str_radix` alone would also take a sign.
                let pair = &bytes[i + 1..i + 3];
                match std::str::from_utf8(pair)
                    .ok()
                    .filter(|_| pair.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Super5ecr3tPa55w0rd";
    const BODY: &[u8] = br#"{ "message": "Hello!" }"#;

    fn parts(uri: &str, signature: Option<&str>) -> Parts {
        let mut builder = http::Request::post(uri);
        if let Some(signature) = signature {
            builder = builder.header("Endpoint-Signature", signature);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_specs_worked_example() {
        let signature = payload_signature(KEY, BODY);
        let hex = signature.strip_prefix("sha256=").unwrap();
        assert_eq!(hex.len(), 64);
        // The spec abbreviates the documented value as `d4f0537d…0e0b36`; the
        // HMAC (also recomputed outside Rust) ends in `…333e0b36`: the spec's
        // sixth-last digit is a transcription slip, the other 13 agree.
        assert!(hex.starts_with("d4f0537d"), "{hex}");
        assert!(hex.ends_with("e0b36"), "{hex}");
        assert_eq!(
            hex,
            "d4f0537db4e230d7a6028a6f7c3bb1b57c9d16f39176d78697e559ac333e0b36"
        );
        let check = RequestValidation::VerifyPayload(KEY.into());
        assert!(check.check(&parts("/x", Some(&signature)), BODY).is_ok());
        assert!(check
            .check(&parts("/x", Some(&signature.to_uppercase())), BODY)
            .is_ok());
    }

    #[test]
    fn payload_signature_failures_are_401() {
        let check = RequestValidation::VerifyPayload(KEY.into());
        let good = payload_signature(KEY, BODY);
        let compact = br#"{"message":"Hello!"}"#;
        for (signature, body) in [
            (Some(good.as_str()), &compact[..]),
            (None, BODY),
            (Some("sha256="), BODY),
            (Some("sha256=zz"), BODY),
            (Some("d4f0537d"), BODY),
            (Some(&good[..good.len() - 2]), BODY),
            (Some("sha256=ü"), BODY),
        ] {
            let err = check.check(&parts("/x", signature), body).unwrap_err();
            assert_eq!(err.status().as_u16(), 401, "{signature:?}");
            assert!(!err.message().contains(KEY));
        }
    }

    #[test]
    fn secret_query_parameter() {
        let check = RequestValidation::SecretAsQueryParam("s3 cr&t".into());
        assert!(check
            .check(&parts("/x?a=1&secret=s3%20cr%26t", None), b"")
            .is_ok());
        assert!(check
            .check(&parts("/x?secret=s3+cr%26t", None), b"")
            .is_ok());
        // `%+5` is no escape (a sign is not a hex digit): `%`, then `+` as a space.
        assert_eq!(percent_decode("%+5%-1%4"), "% 5%-1%4");
        let signed = RequestValidation::SecretAsQueryParam("% 5".into());
        assert!(signed.check(&parts("/x?secret=%+5", None), b"").is_ok());
        for uri in [
            "/x",
            "/x?secret=",
            "/x?secret=s3",
            "/x?Secret=s3%20cr%26t",
            "/x?secret=%zz%",
        ] {
            assert_eq!(
                check
                    .check(&parts(uri, None), b"")
                    .unwrap_err()
                    .status()
                    .as_u16(),
                401,
                "{uri}"
            );
        }
        assert!(RequestValidation::None
            .check(&parts("/x", None), b"")
            .is_ok());
        assert_eq!(format!("{check:?}"), "SECRET_AS_QUERY_PARAM");
    }

    #[test]
    fn configuration_values() {
        assert_eq!(
            RequestValidation::from_config("no_validation", None),
            Ok(RequestValidation::None)
        );
        assert!(RequestValidation::from_config("VERIFY_PAYLOAD", None).is_err());
        assert!(RequestValidation::from_config("SECRET_AS_QUERY_PARAM", Some("".into())).is_err());
        assert!(RequestValidation::from_config("MAYBE", None).is_err());
    }
}
