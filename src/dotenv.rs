//! A dotenv parser, by hand: the format has no specification, and the
//! crates that read it hand values around in plain `String`s and put them
//! into the process environment. This one returns values in wiped
//! buffers and never shows one in an error (errors name the line).
//!
//! Accepted: `KEY=value`, `export KEY=value`, blank lines, `#` comments
//! (whole lines, and after an unquoted value when preceded by a space),
//! single quotes (literal, may span lines), double quotes (may span lines;
//! `\n`, `\r`, `\t`, `\"`, `\\` and `\$` escapes), and unquoted values
//! (trimmed).

use zeroize::Zeroizing;

/// One `KEY=value` entry.
pub struct Entry {
    pub key: String,
    pub value: Zeroizing<Vec<u8>>,
    pub line: usize,
}

/// A parse error: the line and what is wrong, never the value.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub what: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Parses a dotenv file: its entries in order, or the first error.
pub fn parse(text: &[u8]) -> Result<Vec<Entry>, ParseError> {
    let mut parser = Parser {
        text,
        i: 0,
        line: 1,
    };
    let mut entries = Vec::new();
    while parser.skip_to_entry() {
        entries.push(parser.entry()?);
    }
    Ok(entries)
}

/// Said when the text ends inside quotes.
const NEVER_CLOSED: &str = "a quoted value is never closed";

/// A position in the text, and the line it is on (counted from 1).
struct Parser<'a> {
    text: &'a [u8],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    /// The byte at the position, if any is left.
    fn peek(&self) -> Option<u8> {
        self.text.get(self.i).copied()
    }

    /// An error on the current line.
    fn error(&self, what: &'static str) -> ParseError {
        ParseError {
            line: self.line,
            what,
        }
    }

    /// Skips spaces and tabs.
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Skips to the end of the line, leaving its `\n` to be read.
    fn skip_rest_of_line(&mut self) {
        while self.peek().is_some_and(|c| c != b'\n') {
            self.i += 1;
        }
    }

    /// Skips blank lines and comment lines: true when an entry starts at
    /// the position, false at the end of the text.
    fn skip_to_entry(&mut self) -> bool {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return false,
                Some(b'\n') => {
                    self.line += 1;
                    self.i += 1;
                }
                Some(b'\r') => self.i += 1,
                Some(b'#') => self.skip_rest_of_line(),
                Some(_) => return true,
            }
        }
    }

    /// One `[export] KEY = value` entry; the position is left at the end
    /// of its (last) line.
    fn entry(&mut self) -> Result<Entry, ParseError> {
        let line = self.line;
        let key = self.key()?;
        self.skip_blanks();
        if self.peek() != Some(b'=') {
            return Err(self.error("expected `=` after the name"));
        }
        self.i += 1;
        self.skip_blanks();
        let value = match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.quoted_value(q)?,
            _ => self.unquoted_value(),
        };
        Ok(Entry { key, value, line })
    }

    /// The name, after an optional `export`: letters, digits and `_`, not
    /// starting with a digit.
    fn key(&mut self) -> Result<String, ParseError> {
        let rest = &self.text[self.i..];
        if rest.starts_with(b"export ") || rest.starts_with(b"export\t") {
            self.i += 7;
            self.skip_blanks();
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        let key = String::from_utf8_lossy(&self.text[start..self.i]).into_owned();
        if key.is_empty() || key.as_bytes()[0].is_ascii_digit() {
            return Err(self.error("expected KEY=value (a name of letters, digits and _)"));
        }
        Ok(key)
    }

    /// A value in the quotes `q` (at the position), which may span lines:
    /// single quotes literal, double quotes with escapes. Only blanks or a
    /// comment may follow the closing quote on its line.
    fn quoted_value(&mut self, q: u8) -> Result<Zeroizing<Vec<u8>>, ParseError> {
        let opened = self.line;
        let mut value = Zeroizing::new(Vec::new());
        self.i += 1;
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError {
                    line: opened,
                    what: NEVER_CLOSED,
                });
            };
            self.i += 1;
            if c == q {
                break;
            }
            if c == b'\n' {
                self.line += 1;
            }
            if q == b'"' && c == b'\\' {
                self.escape(&mut value)?;
            } else {
                value.push(c);
            }
        }
        self.end_of_quoted_line()?;
        Ok(value)
    }

    /// The character after a backslash in double quotes: what it stands
    /// for is added to `value` (an unknown escape is kept as written).
    fn escape(&mut self, value: &mut Vec<u8>) -> Result<(), ParseError> {
        let Some(e) = self.peek() else {
            return Err(self.error(NEVER_CLOSED));
        };
        self.i += 1;
        match e {
            b'n' => value.push(b'\n'),
            b'r' => value.push(b'\r'),
            b't' => value.push(b'\t'),
            b'"' | b'\\' | b'$' | b'\'' => value.push(e),
            // A backslash at the end of a line joins it.
            b'\n' => self.line += 1,
            _ => value.extend_from_slice(&[b'\\', e]),
        }
        Ok(())
    }

    /// After a closing quote: only blanks, or a comment, to the end of
    /// the line.
    fn end_of_quoted_line(&mut self) -> Result<(), ParseError> {
        self.skip_blanks();
        match self.peek() {
            None | Some(b'\n' | b'\r') => Ok(()),
            Some(b'#') => {
                self.skip_rest_of_line();
                Ok(())
            }
            Some(_) => Err(self.error("unexpected text after a quoted value")),
        }
    }

    /// An unquoted value: to the end of the line, or to a `#` after a
    /// blank (a comment); trailing blanks and a `\r` are not part of it.
    fn unquoted_value(&mut self) -> Zeroizing<Vec<u8>> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let comment =
                c == b'#' && self.i > start && matches!(self.text[self.i - 1], b' ' | b'\t');
            if c == b'\n' || comment {
                break;
            }
            self.i += 1;
        }
        let raw = &self.text[start..self.i];
        let end = raw
            .iter()
            .rposition(|c| !matches!(c, b' ' | b'\t' | b'\r'))
            .map_or(0, |p| p + 1);
        let value = Zeroizing::new(raw[..end].to_vec());
        self.skip_rest_of_line();
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|e| (e.key, String::from_utf8(e.value.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn every_syntax() {
        let text = "# a comment\n\nPLAIN=value\nexport EXPORTED=x y  \nSPACED = z # note\n\
                    SINGLE='lit $HOME \\n'\nDOUBLE=\"a\\nb\\t\\\"c\\\"\"\nMULTI=\"one\ntwo\"\n\
                    EMPTY=\nHASH=a#b\n";
        assert_eq!(
            kv(text),
            [
                ("PLAIN", "value"),
                ("EXPORTED", "x y"),
                ("SPACED", "z"),
                ("SINGLE", "lit $HOME \\n"),
                ("DOUBLE", "a\nb\t\"c\""),
                ("MULTI", "one\ntwo"),
                ("EMPTY", ""),
                ("HASH", "a#b"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    proptest::proptest! {
        /// Any bytes: entries or a line-numbered error, never a panic;
        /// and a value written with double quotes and escapes comes back.
        #[test]
        fn never_panics_and_round_trips(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            value in "[ -~\n\t]{1,40}",
        ) {
            let _ = parse(&junk);
            let escaped: String = value
                .chars()
                .map(|c| match c {
                    '\n' => "\\n".to_owned(),
                    '\t' => "\\t".to_owned(),
                    '"' | '\\' | '$' => format!("\\{c}"),
                    c => c.to_string(),
                })
                .collect();
            let entries = parse(format!("K=\"{escaped}\"\n").as_bytes()).unwrap();
            proptest::prop_assert_eq!(entries[0].value.as_slice(), value.as_bytes());
        }
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let e = parse(b"A=1\nB=\"s3cret never closed\n\n").err().unwrap();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("s3cret"));
        assert_eq!(parse(b"A=1\n=nokey\n").err().unwrap().line, 2);
        assert_eq!(parse(b"A=1\nB 2\n").err().unwrap().line, 2);
        assert_eq!(parse(b"A='x' trailing\n").err().unwrap().line, 1);
    }
}
