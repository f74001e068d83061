//! The admin token: `Authorization: Bearer <token>`, compared in constant time.
//!
//! Without `--admin-token`, the read-only `/api/*` endpoints are open and resets are refused;
//! with it, every `/api/*` endpoint needs the token.

use subtle::ConstantTimeEq;
use warp::http::HeaderMap;
use warp::http::header::AUTHORIZATION;

use super::error::ApiError;
use crate::secret::Secret;

/// What a refused reset says, so that the operator knows how to allow them.
const RESETS_DISABLED: &str = "resetting counters is disabled: start the service with \
     --admin-token (or RATELIMITER_ADMIN_TOKEN) and send it as Authorization: Bearer <token>";

/// Lets a read-only `/api/*` request through when no token is configured or it carries it.
pub fn require_to_read(token: Option<&Secret>, headers: &HeaderMap) -> Result<(), ApiError> {
    match token {
        None => Ok(()),
        Some(token) => require(token, headers),
    }
}

/// Lets a request that changes state through only when a token is configured and it carries it.
pub fn require_to_change(token: Option<&Secret>, headers: &HeaderMap) -> Result<(), ApiError> {
    match token {
        None => Err(ApiError::Forbidden(RESETS_DISABLED)),
        Some(token) => require(token, headers),
    }
}

fn require(token: &Secret, headers: &HeaderMap) -> Result<(), ApiError> {
    let offered = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    // Constant time in the token's content; only its length can show through timing.
    if bool::from(offered.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The token of a `Bearer <token>` credential (the scheme is case-insensitive, RFC 9110).
fn bearer_token(credentials: &str) -> Option<&str> {
    let (scheme, token) = credentials.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let token: Secret = "s3cret".parse().unwrap();
        assert!(require(&token, &headers("Bearer s3cret")).is_ok());
        assert!(require(&token, &headers("bearer  s3cret")).is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer",
        ] {
            assert!(require(&token, &headers(wrong)).is_err(), "{wrong}");
        }
        assert!(require(&token, &HeaderMap::new()).is_err());
    }

    #[test]
    fn without_a_token_reads_are_open_and_changes_refused() {
        assert!(require_to_read(None, &HeaderMap::new()).is_ok());
        let refused = require_to_change(None, &headers("Bearer anything")).unwrap_err();
        assert_eq!(refused.status(), warp::http::StatusCode::FORBIDDEN);
        assert!(refused.message().contains("--admin-token"));
    }
}
