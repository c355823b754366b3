//! Numeric route patterns in CUCM's wildcard notation.

use std::fmt;

use super::{PatternError, Rank, Specificity};

/// A numeric route pattern, in CUCM notation: literal digits, `*`, `#`, `A`-`D` and `+` (also
/// written `\+`), `X` for any digit, `[1-5]` or `[^0]` for a digit class, `!` for one or more
/// digits (last only), and `.` as the discard-digits delimiter, which matches nothing.
///
/// ```
/// use dialplan::NumericPattern;
///
/// let p = NumericPattern::parse("12[1-5]X").unwrap();
/// assert!(p.matches("1234"));
/// assert!(!p.matches("1264"));
/// assert!(NumericPattern::parse("9!").unwrap().matches("9011441234"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericPattern {
    text: Box<str>,
    elems: Box<[Elem]>,
    /// A trailing `!`: one or more digits follow the fixed positions.
    open: bool,
}

/// One fixed position of a numeric pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    /// One character, upper case (`0-9 * # + A-D`).
    Lit(u8),
    /// A set of digits: bit `d` stands for digit `d`.
    Set(u16),
}

impl NumericPattern {
    /// The most fixed positions a pattern may have. At most 32 keeps every match count below
    /// 10^32, so specificity comparisons are exact in `u128`.
    pub const MAX_POSITIONS: usize = 32;

    /// Parses a pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        const KIND: &str = "numeric";
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(PatternError::Empty);
        }
        let mut elems = Vec::with_capacity(bytes.len());
        let mut open = false;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if open {
                return Err(PatternError::BangNotLast { at: i - 1 });
            }
            match b {
                b'0'..=b'9' | b'*' | b'#' | b'+' => elems.push(Elem::Lit(b)),
                b'A'..=b'D' | b'a'..=b'd' => elems.push(Elem::Lit(b.to_ascii_uppercase())),
                b'X' | b'x' => elems.push(Elem::Set(ALL_DIGITS)),
                b'\\' if bytes.get(i + 1) == Some(&b'+') => {
                    elems.push(Elem::Lit(b'+'));
                    i += 1;
                }
                b'[' => {
                    let (set, end) = parse_class(bytes, i)?;
                    elems.push(Elem::Set(set));
                    i = end;
                }
                b'!' => open = true,
                // CUCM's discard-digits delimiter: it marks a position and matches nothing.
                b'.' => {}
                _ => {
                    return Err(PatternError::BadChar {
                        ch: char_at(text, i),
                        at: i,
                        kind: KIND,
                    });
                }
            }
            i += 1;
        }
        if elems.is_empty() && !open {
            return Err(PatternError::Empty);
        }
        if elems.len() > Self::MAX_POSITIONS {
            return Err(PatternError::TooLong {
                max: Self::MAX_POSITIONS,
                len: elems.len(),
            });
        }
        Ok(Self {
            text: text.into(),
            elems: elems.into(),
            open,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the dialled string matches. Letters `a`-`d` compare case-insensitively.
    pub fn matches(&self, dialled: &str) -> bool {
        let s = dialled.as_bytes();
        let n = self.elems.len();
        if self.open {
            if s.len() <= n || !s[n..].iter().all(u8::is_ascii_digit) {
                return false;
            }
        } else if s.len() != n {
            return false;
        }
        self.elems.iter().zip(s).all(|(e, &c)| match *e {
            Elem::Lit(l) => c.to_ascii_uppercase() == l,
            Elem::Set(set) => c.is_ascii_digit() && set & (1 << (c - b'0')) != 0,
        })
    }

    /// How specific the pattern is: CUCM's closest match is the pattern that matches the
    /// fewest strings. A fixed-length pattern beats any `!` pattern; two `!` patterns compare by
    /// the share of strings of one length they match, then by their minimum length.
    pub fn specificity(&self) -> Specificity {
        Specificity(Rank::Numeric(NumericRank {
            open: self.open,
            count: self.fixed_count(),
            // MAX_POSITIONS (32) fits in a u8.
            len: self.elems.len() as u8,
        }))
    }

    /// The single string this pattern matches, if it holds only literals (the fast path of
    /// the plan's index).
    pub(crate) fn literal(&self) -> Option<String> {
        if self.open {
            return None;
        }
        self.elems
            .iter()
            .map(|e| match *e {
                Elem::Lit(l) => Some(char::from(l)),
                Elem::Set(_) => None,
            })
            .collect()
    }

    /// The number of strings the fixed positions match.
    fn fixed_count(&self) -> u128 {
        self.elems
            .iter()
            .map(|e| match *e {
                Elem::Lit(_) => 1,
                Elem::Set(set) => u128::from(set.count_ones()),
            })
            .product()
    }
}

impl fmt::Display for NumericPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Specificity of a numeric pattern. Greater is more specific.
#[derive(Debug, Clone, Copy)]
pub(super) struct NumericRank {
    open: bool,
    count: u128,
    len: u8,
}

impl NumericRank {
    pub(super) fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self.open, other.open) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            // Fewer strings is more specific. Patterns of different lengths never match the
            // same string, so the length only makes the order total.
            (false, false) => other.count.cmp(&self.count).then(self.len.cmp(&other.len)),
            (true, true) => {
                // Compare the share of n-digit strings matched, count / 10^len, by
                // cross-multiplying. count <= 10^len, so each side stays below 10^32.
                let m = self.len.min(other.len);
                let mine = self.count * 10u128.pow(u32::from(other.len - m));
                let theirs = other.count * 10u128.pow(u32::from(self.len - m));
                theirs.cmp(&mine).then(self.len.cmp(&other.len))
            }
        }
    }
}

impl fmt::Display for NumericRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.open {
            write!(
                f,
                "{} prefix(es) of {} then one or more digits",
                self.count, self.len
            )
        } else if self.count == 1 {
            f.write_str("exactly 1 string")
        } else {
            write!(f, "{} strings", self.count)
        }
    }
}

/// Parses `[...]` starting at `start` (the `[`), returning the digit set and the index of `]`.
fn parse_class(bytes: &[u8], start: usize) -> Result<(u16, usize), PatternError> {
    let mut i = start + 1;
    let negate = bytes.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut set = 0u16;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(PatternError::UnclosedClass { at: start });
        };
        match b {
            b']' => break,
            b'0'..=b'9' => {
                let hi = if bytes.get(i + 1) == Some(&b'-') {
                    let Some(&hi) = bytes.get(i + 2).filter(|h| h.is_ascii_digit()) else {
                        return Err(PatternError::BadRange { at: i });
                    };
                    if hi < b {
                        return Err(PatternError::BadRange { at: i });
                    }
                    i += 2;
                    hi
                } else {
                    b
                };
                for d in b..=hi {
                    set |= 1 << (d - b'0');
                }
            }
            _ => {
                return Err(PatternError::BadChar {
                    ch: char::from(b),
                    at: i,
                    kind: "digit class",
                });
            }
        }
        i += 1;
    }
    if negate {
        set = !set & ALL_DIGITS;
    }
    if set == 0 {
        return Err(PatternError::EmptyClass { at: start });
    }
    Ok((set, i))
}

fn char_at(text: &str, at: usize) -> char {
    text[at..].chars().next().unwrap_or('?')
}

const ALL_DIGITS: u16 = 0x3ff;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NumericPattern {
        NumericPattern::parse(s).unwrap()
    }

    #[test]
    fn cucm_closest_match_order() {
        // CUCM's own example: 1234 beats 121X beats 12XX beats 1XXX (for 1214 and 1234).
        let order = ["1234", "121X", "12XX", "1XXX"].map(|s| p(s).specificity());
        for w in order.windows(2) {
            assert!(w[0] > w[1], "{:?} should beat {:?}", w[0], w[1]);
        }
        assert!(p("12[1-5]X").specificity() > p("12XX").specificity());
        assert!(p("12[1-5]X").specificity() < p("121X").specificity());
        assert!(p("1XXX").specificity() > p("1!").specificity());
        assert!(p("12!").specificity() > p("1!").specificity());
        assert!(p("9!").specificity() > p("!").specificity());
    }

    #[test]
    fn parses_cucm_notation() {
        assert!(p("+1408XXXXXXX").matches("+14085550100"));
        assert!(p("\\+1408XXXXXXX").matches("+14085550100"));
        assert!(!p("\\+1408XXXXXXX").matches("14085550100"));
        assert!(p("9.1XXX").matches("91234"));
        assert!(p("[^0]XX").matches("123"));
        assert!(!p("[^0]XX").matches("023"));
        assert!(p("*8X#").matches("*85#"));
        assert!(p("1A").matches("1a"));
        assert!(p("9!").matches("90"));
        assert!(!p("9!").matches("9"));
        assert!(!p("9!").matches("90*"));
        assert_eq!(p("12[1-5]X").literal(), None);
        assert_eq!(p("\\+1.2").literal().as_deref(), Some("+12"));
    }

    #[test]
    fn refuses_bad_patterns() {
        assert_eq!(NumericPattern::parse(""), Err(PatternError::Empty));
        assert_eq!(NumericPattern::parse("."), Err(PatternError::Empty));
        assert_eq!(
            NumericPattern::parse("9!1"),
            Err(PatternError::BangNotLast { at: 1 })
        );
        assert_eq!(
            NumericPattern::parse("1[2-"),
            Err(PatternError::BadRange { at: 2 })
        );
        assert_eq!(
            NumericPattern::parse("1[5-2]"),
            Err(PatternError::BadRange { at: 2 })
        );
        assert_eq!(
            NumericPattern::parse("1[23"),
            Err(PatternError::UnclosedClass { at: 1 })
        );
        assert_eq!(
            NumericPattern::parse("[^0-9]"),
            Err(PatternError::EmptyClass { at: 0 })
        );
        assert!(matches!(
            NumericPattern::parse("1E"),
            Err(PatternError::BadChar { ch: 'E', at: 1, .. })
        ));
        assert!(matches!(
            NumericPattern::parse(&"X".repeat(33)),
            Err(PatternError::TooLong { max: 32, len: 33 })
        ));
    }
}
