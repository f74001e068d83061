//! A value that must never be printed (a Redis URL with its password, the admin token): `Debug`
//! and `Display` show `<redacted>`, and the text is only reachable through [`Secret::expose`].

use std::fmt;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(text))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A URL as it may be shown: `scheme://user@host:port/...` without the password that
/// `user:password@` (or `:password@`) carries, so that logs and errors can name the host.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let at = if user.is_empty() { "" } else { "@" };
            format!("{scheme}://{user}{at}{host}{path}")
        }
        None => url.to_string(),
    }
}

/// A comma-separated list of URLs (`--redis-url` for Sentinel or Cluster), each
/// [`without_password`], joined by `, `.
pub fn urls_without_passwords(urls: &str) -> String {
    urls.split(',')
        .map(|url| without_password(url.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        for (url, shown) in [
            ("redis://admin:hunter2@db:6379/0", "redis://admin@db:6379/0"),
            ("rediss://:hunter2@db:6380", "rediss://db:6380"),
            ("redis://db:6379", "redis://db:6379"),
            ("redis://a:b@c:d@db:1", "redis://a@db:1"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let secret: Secret = "redis://user:hunter2@host".parse().unwrap();
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        assert_eq!(secret.expose(), "redis://user:hunter2@host");
    }
}
