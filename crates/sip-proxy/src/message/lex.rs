//! Byte-level helpers shared by the typed header views: LWS trimming, comma splitting that
//! respects quoted strings and `<...>`, and `;name=value` parameter iteration.
//!
//! Folded header values still contain their CRLF (or LF) followed by whitespace; every helper
//! here treats CR and LF as linear whitespace, which is what folding means (RFC 3261 §7.3.1).

/// Returns true for SP, HT, CR and LF.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Returns true for the RFC 3261 `token` characters.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// The `token` character class as a lookup table: the hot loop of header-name validation.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    table
};

/// Strips linear whitespace from both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let (start, end) = trim_range(s);
    &s[start..end]
}

/// True when every quoted-string in `s` is closed.
pub(crate) fn quotes_balanced(s: &[u8]) -> bool {
    let mut quoted = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            // RFC 3261 §25.1 quoted-pair: a backslash escapes the next byte inside quotes.
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            _ => {}
        }
        i += 1;
    }
    !quoted
}

/// The range of `s` left after stripping linear whitespace from both ends.
pub(crate) fn trim_range(s: &[u8]) -> (usize, usize) {
    let mut start = 0;
    let mut end = s.len();
    while start < end && is_lws(s[start]) {
        start += 1;
    }
    while end > start && is_lws(s[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// Skips linear whitespace from `pos`, returning the first other position.
pub(crate) fn skip_lws(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && is_lws(s[pos]) {
        pos += 1;
    }
    pos
}

/// Iterates over the comma-separated elements of a header value, as trimmed ranges of `s`.
///
/// Commas inside a quoted string (with `\` escapes) or inside `<...>` do not split. Empty
/// elements (`a,,b`) are skipped, as RFC 7230-style lists allow.
pub(crate) struct CommaSplit<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Self { s, pos: 0 }
    }
}

impl Iterator for CommaSplit<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        loop {
            if self.pos >= self.s.len() {
                return None;
            }
            let start = self.pos;
            let end = element_end(self.s, start);
            self.pos = end + 1;
            let (a, b) = trim_range(&self.s[start..end]);
            if a < b {
                return Some((start + a, start + b));
            }
        }
    }
}

/// Finds the end of the list element starting at `start`: the next top-level comma or the end.
/// Jumps between interesting bytes with `memchr` rather than testing every byte.
fn element_end(s: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < s.len() {
        let Some(rel) = memchr::memchr3(b',', b'"', b'<', &s[i..]) else {
            return s.len();
        };
        i += rel;
        match s[i] {
            b',' => return i,
            b'"' => i = quoted_end(s, i + 1),
            _ => match memchr::memchr(b'>', &s[i..]) {
                Some(rel) => i += rel + 1,
                None => return s.len(),
            },
        }
    }
    s.len()
}

/// The position after the closing quote of a quoted string whose content starts at `i`.
fn quoted_end(s: &[u8], mut i: usize) -> usize {
    while let Some(rel) = memchr::memchr2(b'"', b'\\', &s[i.min(s.len())..]) {
        i += rel;
        if s[i] == b'"' {
            return i + 1;
        }
        i += 2;
    }
    s.len()
}

/// Finds the first `;` outside a quoted string at or after `from`.
pub(crate) fn find_semicolon(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < s.len() {
        i += memchr::memchr2(b';', b'"', &s[i..])?;
        if s[i] == b';' {
            return Some(i);
        }
        i = quoted_end(s, i + 1);
    }
    None
}

/// A `;`-separated parameter list (`branch=z9hG4bK1;rport;lr`), starting after the first `;`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    /// Wraps a raw parameter list; the leading `;` may be present or not.
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw }
    }

    /// The raw bytes of the parameter list.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterates over `(name, value)`; the name is trimmed, a flag parameter has no value.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            s: self.raw,
            pos: 0,
        }
    }

    /// Looks a parameter up by name, case-insensitively. `Some(None)` is a flag parameter.
    pub fn get(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// True when the parameter is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);
    type IntoIter = ParamIter<'a>;

    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Params`] list.
#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos >= self.s.len() {
                return None;
            }
            let start = self.pos;
            let end = find_semicolon(self.s, start).unwrap_or(self.s.len());
            self.pos = end + 1;
            let item = &self.s[start..end];
            let (name, value) = match memchr::memchr(b'=', item) {
                Some(eq) => (trim(&item[..eq]), Some(trim(&item[eq + 1..]))),
                None => (trim(item), None),
            };
            if !name.is_empty() {
                return Some((name, value));
            }
        }
    }
}

/// Parses an unsigned decimal with optional leading zeros; `None` on anything else or overflow.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
        if n > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(n).ok()
}

/// Decodes `%HH` escapes. Borrowed when there is nothing to decode; a malformed escape is kept
/// as it is.
pub(crate) fn percent_decode(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr(b'%', s).is_none() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let s = br#""a,b" <sip:x@y;p=1,2>;q=1 , sip:z@w,,  "#;
        let parts: Vec<&[u8]> = CommaSplit::new(s).map(|(a, b)| &s[a..b]).collect();
        assert_eq!(
            parts,
            vec![&br#""a,b" <sip:x@y;p=1,2>;q=1"#[..], b"sip:z@w"]
        );
    }

    #[test]
    fn comma_split_handles_escaped_quotes_and_unterminated_input() {
        let s = br#""a\",b" <sip:x>, y, "open"#;
        let parts: Vec<&[u8]> = CommaSplit::new(s).map(|(a, b)| &s[a..b]).collect();
        assert_eq!(parts, vec![&br#""a\",b" <sip:x>"#[..], b"y", br#""open"#]);
        let s = b"<sip:a,b";
        assert_eq!(CommaSplit::new(s).count(), 1);
        assert_eq!(find_semicolon(br#"x="a;b";c"#, 0), Some(7));
        assert_eq!(find_semicolon(br#"x="a\";b"#, 0), None);
    }

    #[test]
    fn params_iterate_with_lws_and_flags() {
        let p = Params::new(b" branch  =   z9hG4bK9ikj8 ;rport; x=\"a;b\"");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(v[0], (&b"branch"[..], Some(&b"z9hG4bK9ikj8"[..])));
        assert_eq!(v[1], (&b"rport"[..], None));
        assert_eq!(v[2], (&b"x"[..], Some(&b"\"a;b\""[..])));
        assert_eq!(p.get("BRANCH"), Some(Some(&b"z9hG4bK9ikj8"[..])));
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(&*percent_decode(b"%41lice"), b"Alice");
        assert_eq!(&*percent_decode(b"a%4"), b"a%4");
        assert_eq!(&*percent_decode(b"%zz%00"), b"%zz\0");
    }
}
