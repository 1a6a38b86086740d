//! `application/x-www-form-urlencoded` bodies of the sign-in and sign-out endpoints, decoded
//! strictly: a field given twice is refused (which copy counts would otherwise depend on the
//! parser), and values must decode to UTF-8 exactly (the usual decoders replace bad bytes
//! with U+FFFD: a silent repair of bytes a signature may be checked over).

use std::collections::HashMap;

/// Why a form was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A field named more than once.
    #[error("a field appears twice")]
    Duplicate,
    /// A name or value that is not UTF-8 once decoded.
    #[error("the form is not valid UTF-8")]
    NotUtf8,
}

/// The fields of a form body whose names are in `wanted`; others are ignored.
pub fn parse(body: &[u8], wanted: &[&str]) -> Result<HashMap<String, String>, FormError> {
    let mut fields = HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode(k)?;
        if !wanted.contains(&name.as_str()) {
            continue;
        }
        if fields.insert(name, decode(v)?).is_some() {
            return Err(FormError::Duplicate);
        }
    }
    Ok(fields)
}

/// One component: `+` is a space, `%XX` a byte, and the bytes must be UTF-8.
fn decode(raw: &[u8]) -> Result<String, FormError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding() {
        let f = parse(b"a=x+y%2B%C3%A9&b&&c=1", &["a", "b"]).unwrap();
        assert_eq!(f["a"], "x y+\u{e9}");
        assert_eq!(f["b"], "");
        assert!(!f.contains_key("c"));
        assert_eq!(parse(b"a=1&a=2", &["a"]), Err(FormError::Duplicate));
        assert_eq!(parse(b"a=1&%61=2", &["a"]), Err(FormError::Duplicate));
        assert_eq!(parse(b"a=%FF", &["a"]), Err(FormError::NotUtf8));
        // An ignored field may be anything.
        assert!(parse(b"z=%FF&z=1&a=ok", &["a"]).is_ok());
    }
}
