//! Where the browser goes after sign-in. Only a path on the same tenant host is accepted;
//! everything a browser might read as another origin is refused.

/// Longest return URL kept.
pub const MAX_LEN: usize = 2048;

/// Validates a return URL for a request to `host` (lower case, without port) and returns the
/// local path to redirect to. Refuses protocol-relative (`//evil`), backslash (`/\evil`),
/// scheme-only (`https:evil`), other-host, percent-encoded and whitespace/control variants.
pub fn validate(candidate: &str, host: &str) -> Option<String> {
    if candidate.is_empty() || candidate.len() > MAX_LEN {
        return None;
    }
    let path = match candidate.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") =>
        {
            let (authority, path) = rest
                .find('/')
                .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
            let authority_host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    authority
                }
            });
            if authority.contains('@') || !authority_host.eq_ignore_ascii_case(host) {
                return None;
            }
            path
        }
        _ => candidate,
    };
    if !is_local_path(path) {
        return None;
    }
    // A browser, proxy or framework may decode again: every decoded form must still start
    // like a local path. Four nested encodings is more than anyone legitimate sends.
    let mut current = std::borrow::Cow::Borrowed(path);
    let mut settled = false;
    for _ in 0..4 {
        let decoded = percent_encoding::percent_decode_str(&current)
            .decode_utf8()
            .ok()?;
        if decoded == current {
            settled = true;
            break;
        }
        if !decoded_is_local(&decoded) {
            return None;
        }
        current = std::borrow::Cow::Owned(decoded.into_owned());
    }
    if !settled {
        return None;
    }
    // Sending someone back into the sign-in machinery would loop.
    if current.starts_with("/_vestibule/") {
        return Some("/".into());
    }
    Some(path.to_owned())
}

/// A decoded form may hold spaces (from `%20` in a query) but must not start like another
/// origin or carry line breaks.
fn decoded_is_local(path: &str) -> bool {
    let b = path.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !b.iter().any(|c| c.is_ascii_control())
}

fn is_local_path(path: &str) -> bool {
    let b = path.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !b
            .iter()
            .any(|&c| c == b'\\' || c.is_ascii_control() || c == b' ' || c >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "crm.contoso.example";

    #[test]
    fn local_paths_and_same_host_urls_are_kept() {
        assert_eq!(validate("/", HOST).as_deref(), Some("/"));
        assert_eq!(
            validate("/deals?id=7&x=%20y", HOST).as_deref(),
            Some("/deals?id=7&x=%20y")
        );
        assert_eq!(
            validate("https://crm.contoso.example/a/b", HOST).as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            validate("https://CRM.contoso.example:8443/a", HOST).as_deref(),
            Some("/a")
        );
        assert_eq!(validate("/_vestibule/login", HOST).as_deref(), Some("/"));
    }

    #[test]
    fn open_redirect_attempts_are_refused() {
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https:evil.example",
            "https://evil.example/",
            "https://crm.contoso.example@evil.example/",
            "https://crm.contoso.example.evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            " /ok",
            "/\r\nLocation: https://evil.example",
            "/\t/evil.example",
            "/ok\n",
            "/%0d%0aSet-Cookie:x=1",
            "//%09/evil.example",
            "",
        ] {
            assert_eq!(validate(evil, HOST), None, "{evil:?}");
        }
        assert_eq!(validate(&format!("/{}", "a".repeat(MAX_LEN)), HOST), None);
    }
}
