//! The bytes before the root element of a token or metadata document: a byte-order mark and
//! the XML declaration decide how every parser decodes everything after them, so they are read
//! here once, strictly, by the XML 1.0 grammar (§2.8, production XMLDecl), and anything but
//! plain UTF-8 is refused before any parser sees the document.

use super::error::WsFedError;

/// XML white space (production S).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A cursor over the declaration's bytes.
struct Decl<'a> {
    rest: &'a [u8],
}

impl<'a> Decl<'a> {
    fn space(&mut self) -> bool {
        let n = self.rest.iter().take_while(|b| is_space(**b)).count();
        self.rest = &self.rest[n..];
        n > 0
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        match self.rest.strip_prefix(word) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// `S name Eq quoted-value`; `None` when the next pseudo-attribute is not `name`.
    fn pseudo_attribute(&mut self, name: &[u8]) -> Result<Option<&'a [u8]>, WsFedError> {
        let saved = self.rest;
        if !self.space() || !self.literal(name) {
            self.rest = saved;
            return Ok(None);
        }
        self.space();
        if !self.literal(b"=") {
            return Err(malformed());
        }
        self.space();
        let quote = match self.rest.first() {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => return Err(malformed()),
        };
        let body = &self.rest[1..];
        let end = body
            .iter()
            .position(|b| *b == quote)
            .ok_or_else(malformed)?;
        self.rest = &body[end + 1..];
        Ok(Some(&body[..end]))
    }
}

fn malformed() -> WsFedError {
    WsFedError::Encoding("the XML declaration is malformed")
}

/// Checks the prolog of `xml`: no byte-order mark, no NUL, and an XML declaration, if any, at
/// the very start, of version 1.0, naming no encoding but UTF-8 (case-insensitively, as XML
/// compares encoding names), with `standalone` yes or no. Returns the length of the
/// declaration (0 without one) so the caller can look for processing instructions after it.
pub fn check(xml: &str) -> Result<usize, WsFedError> {
    let bytes = xml.as_bytes();
    if xml.starts_with('\u{feff}') {
        return Err(WsFedError::Encoding(
            "the document starts with a byte-order mark",
        ));
    }
    if bytes.contains(&0) {
        return Err(WsFedError::Encoding(
            "the document contains a NUL character",
        ));
    }
    let lead = bytes.iter().take_while(|b| is_space(**b)).count();
    if lead > 0 && bytes[lead..].starts_with(b"<?xml") {
        return Err(WsFedError::Encoding(
            "the XML declaration is not at the start of the document",
        ));
    }
    let Some(after) = bytes.strip_prefix(b"<?xml") else {
        return Ok(0);
    };
    let mut d = Decl { rest: after };
    if !d.rest.first().copied().is_some_and(is_space) {
        // `<?xml-stylesheet …?>` and the like: a processing instruction, refused elsewhere.
        return Ok(0);
    }
    match d.pseudo_attribute(b"version")? {
        Some(b"1.0") => {}
        _ => return Err(WsFedError::Encoding("the XML version is not 1.0")),
    }
    if let Some(encoding) = d.pseudo_attribute(b"encoding")? {
        if !encoding.eq_ignore_ascii_case(b"UTF-8") {
            return Err(WsFedError::Encoding(
                "the document declares an encoding other than UTF-8",
            ));
        }
    }
    if let Some(standalone) = d.pseudo_attribute(b"standalone")? {
        if standalone != b"yes" && standalone != b"no" {
            return Err(malformed());
        }
    }
    d.space();
    if !d.literal(b"?>") {
        return Err(malformed());
    }
    Ok(bytes.len() - d.rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(xml: &str) -> bool {
        matches!(check(xml), Err(WsFedError::Encoding(_)))
    }

    #[test]
    fn utf8_declarations_and_none_pass() {
        assert_eq!(check("<a/>"), Ok(0));
        let d = "<?xml version=\"1.0\"?>";
        assert_eq!(check(&format!("{d}<a/>")), Ok(d.len()));
        for ok in [
            "<?xml version='1.0' encoding='utf-8'?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><a/>",
            "<?xml version = \"1.0\"\n encoding = \"Utf-8\" standalone='no' ?><a/>",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_encodings_and_quirks_are_refused() {
        for bad in [
            "<?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>",
            // The substring "utf-8" is elsewhere in the declaration.
            "<?xml version=\"1.0\" encoding=\"UTF-7\" standalone=\"utf-8\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"utf8\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-16LE\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-32\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"ebcdic-cp-us\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8 \"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"encoding=\"UTF-7\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"UTF-7\"?><a/>",
            "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-7\"?><a/>",
            "<?xml encoding=\"UTF-8\"?><a/>",
            "<?xml version=\"1.1\" encoding=\"UTF-8\"?><a/>",
            "<?xml version=\"1.0\" encoding=UTF-8?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"utf-8\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"",
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>",
            "\u{feff}<a/>",
            " <?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>",
            "\n<?xml version=\"1.0\"?><a/>",
            "<a>\0</a>",
        ] {
            assert!(refused(bad), "{bad:?} was not refused");
        }
    }
}
