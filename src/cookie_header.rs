//! The `Cookie` request header and Vestibule's cookies in it: their names, finding them
//! (exactly one of a name, or none), removing them before a request goes upstream, and the
//! `Set-Cookie` values that set them. Works on bytes. A leaf: sessions, the proxy and the
//! upstream header rewrite all read cookies through it.

/// Every value of cookie `name` in `Cookie` header values, in order. More than one can arrive
/// when a sibling domain plants its own; the caller tries each. Works on bytes: another
/// application's cookie may carry non-ASCII or non-UTF-8 bytes, and that must not hide ours.
pub fn find<'a>(
    cookie_headers: impl Iterator<Item = &'a [u8]> + 'a,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    cookie_headers
        .flat_map(|h| h.split(|b| *b == b';'))
        .filter_map(move |pair| {
            let (key, value) = split_pair(pair.trim_ascii());
            let value = std::str::from_utf8(value?.trim_ascii()).ok()?;
            (key == name.as_bytes()).then(|| value.trim_matches('"'))
        })
}

/// The value of cookie `name` when the headers carry exactly one; `Err` with the count when
/// they carry several. Two cookies of one name mean someone planted one (a sibling domain, a
/// plain-HTTP page): trying each would let a planted session or binding win, so the request
/// is treated as carrying none.
pub fn single<'a>(
    cookie_headers: impl Iterator<Item = &'a [u8]> + 'a,
    name: &'a str,
) -> Result<Option<&'a str>, usize> {
    let mut found = find(cookie_headers, name);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    match found.count() {
        0 => Ok(Some(first)),
        more => Err(more + 1),
    }
}

/// The names of Vestibule's cookies, derived from the configured base name. Over HTTPS the
/// session and binding cookies carry the `__Host-` prefix, which browsers only accept from
/// this very host, over TLS, for `Path=/`, without `Domain`: a sibling domain or a
/// plain-HTTP page cannot plant them (login fixation).
#[derive(Debug, Clone)]
pub struct CookieNames {
    session: String,
    host_session: String,
    binding: String,
    host_binding: String,
    signout: String,
    secure_signout: String,
}

impl CookieNames {
    /// Names for the configured base (`session.cookie`).
    pub fn new(base: &str) -> Self {
        Self {
            session: base.to_owned(),
            host_session: format!("__Host-{base}"),
            binding: format!("{base}_login"),
            host_binding: format!("__Host-{base}_login"),
            signout: format!("{base}_signout"),
            secure_signout: format!("__Secure-{base}_signout"),
        }
    }

    /// The session cookie's name on a secure (HTTPS) or plain request.
    pub fn session(&self, secure: bool) -> &str {
        if secure {
            &self.host_session
        } else {
            &self.session
        }
    }

    /// The login binding cookie's name.
    pub fn binding(&self, secure: bool) -> &str {
        if secure {
            &self.host_binding
        } else {
            &self.binding
        }
    }

    /// The sign-out cookie: the session handle again, `SameSite=None`, sent only to the
    /// WS-Federation endpoint and read only by its sign-out cleanup, so that an identity
    /// provider's cross-site cleanup request can still name the session (`__Secure-` over
    /// HTTPS; a `Path` other than `/` rules out `__Host-`).
    pub fn signout(&self, secure: bool) -> &str {
        if secure {
            &self.secure_signout
        } else {
            &self.signout
        }
    }

    /// Every name, for stripping them all from what the upstream receives.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.session,
            &self.host_session,
            &self.binding,
            &self.host_binding,
            &self.signout,
            &self.secure_signout,
        ]
    }
}

/// `key=value` → (key, Some(value)); a pair without `=` is all key.
fn split_pair(pair: &[u8]) -> (&[u8], Option<&[u8]>) {
    match pair.iter().position(|b| *b == b'=') {
        Some(eq) => (&pair[..eq], Some(&pair[eq + 1..])),
        None => (pair, None),
    }
}

/// Whether `pair` is cookie `name`. Stricter to keep than `find` is to accept: spaces
/// around the key do not save a pair from being removed.
fn is_named(pair: &[u8], name: &str) -> bool {
    split_pair(pair).0.trim_ascii() == name.as_bytes()
}

/// Removes the cookies named in `names` from one `Cookie` header value; `None` when nothing
/// else remains. Bytes in, bytes out: a value that is not text must still lose our cookies,
/// never pass through whole.
pub fn without<S: AsRef<str>>(header: &[u8], names: &[S]) -> Option<Vec<u8>> {
    let ours = |pair: &[u8]| names.iter().any(|name| is_named(pair, name.as_ref()));
    // Runs on every authenticated request: the usual header holds our cookie alone.
    if !header.contains(&b';') {
        let pair = header.trim_ascii();
        return (!pair.is_empty() && !ours(pair)).then(|| pair.to_vec());
    }
    let mut kept = Vec::new();
    for pair in header.split(|b| *b == b';').map(<[u8]>::trim_ascii) {
        if pair.is_empty() || ours(pair) {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    (!kept.is_empty()).then_some(kept)
}

/// `Set-Cookie` value of the sign-out cookie (see `CookieNames::signout`); HTTPS only.
pub fn set_signout_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!(
        "{name}={value}; Path=/_vestibule/wsfed; Max-Age={max_age_secs}; HttpOnly; SameSite=None; Secure"
    )
}

/// `Set-Cookie` value carrying a session handle.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_given_twice_counts_as_none() {
        let one: [&[u8]; 1] = [b"a=1; vestibule=v1.x"];
        assert_eq!(single(one.into_iter(), "vestibule"), Ok(Some("v1.x")));
        let planted: [&[u8]; 2] = [b"vestibule=v1.attacker; a=1", b"vestibule=v1.x"];
        assert_eq!(single(planted.into_iter(), "vestibule"), Err(2));
        let none: [&[u8]; 1] = [b"other=1"];
        assert_eq!(single(none.into_iter(), "vestibule"), Ok(None));
        // `__Host-vestibule` is another cookie: it does not collide with `vestibule`.
        let both: [&[u8]; 1] = [b"vestibule=a; __Host-vestibule=b"];
        assert_eq!(single(both.into_iter(), "__Host-vestibule"), Ok(Some("b")));
    }

    #[test]
    fn names_take_the_host_prefix_only_over_https() {
        let n = CookieNames::new("vestibule");
        assert_eq!(n.session(true), "__Host-vestibule");
        assert_eq!(n.session(false), "vestibule");
        assert_eq!(n.binding(true), "__Host-vestibule_login");
        assert_eq!(n.binding(false), "vestibule_login");
        assert_eq!(n.signout(true), "__Secure-vestibule_signout");
        assert_eq!(n.signout(false), "vestibule_signout");
        assert_eq!(
            without(
                b"__Host-vestibule=s; crm=1; __Host-vestibule_login=b; vestibule_login=c",
                &n.all()
            )
            .unwrap(),
            b"crm=1"
        );
    }
    #[test]
    fn finds_every_copy_and_strips_ours() {
        let headers: Vec<&[u8]> = vec![b"a=1; vestibule=x", b"vestibule=\"y\";b=2"];
        let found: Vec<&str> = find(headers.into_iter(), "vestibule").collect();
        assert_eq!(found, vec!["x", "y"]);
        assert_eq!(
            without(b"a=1; vestibule=x; b=2", &["vestibule"]).unwrap(),
            b"a=1; b=2"
        );
        assert_eq!(without(b"vestibule=x", &["vestibule"]), None);
        assert_eq!(without(b" vestibule =x ;;", &["vestibule"]), None);
        assert_eq!(
            without(b"vestibulex=1", &["vestibule"]).unwrap(),
            b"vestibulex=1"
        );
        // Another application's non-ASCII or non-UTF-8 cookie neither hides ours nor keeps
        // it from being removed.
        let odd: &[u8] = b"pref=Zo\xc3\xab; vestibule=v1.abc; raw=\xff\xfe";
        assert_eq!(
            find([odd].into_iter(), "vestibule").collect::<Vec<_>>(),
            vec!["v1.abc"]
        );
        assert_eq!(
            without(odd, &["vestibule"]).unwrap(),
            b"pref=Zo\xc3\xab; raw=\xff\xfe"
        );
    }
}
