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

pub fn parse(text: &[u8]) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let err = |line, what| ParseError { line, what };
    while i < text.len() {
        // Start of a line: skip blanks; comments and empty lines.
        while i < text.len() && (text[i] == b' ' || text[i] == b'\t') {
            i += 1;
        }
        if i >= text.len() {
            break;
        }
        if text[i] == b'\n' || text[i] == b'\r' {
            if text[i] == b'\n' {
                line += 1;
            }
            i += 1;
            continue;
        }
        if text[i] == b'#' {
            while i < text.len() && text[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start_line = line;
        if text[i..].starts_with(b"export ") || text[i..].starts_with(b"export\t") {
            i += 7;
            while i < text.len() && (text[i] == b' ' || text[i] == b'\t') {
                i += 1;
            }
        }
        let key_start = i;
        while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
            i += 1;
        }
        let key = String::from_utf8_lossy(&text[key_start..i]).into_owned();
        if key.is_empty() || key.as_bytes()[0].is_ascii_digit() {
            return Err(err(
                start_line,
                "expected KEY=value (a name of letters, digits and _)",
            ));
        }
        while i < text.len() && (text[i] == b' ' || text[i] == b'\t') {
            i += 1;
        }
        if i >= text.len() || text[i] != b'=' {
            return Err(err(start_line, "expected `=` after the name"));
        }
        i += 1;
        while i < text.len() && (text[i] == b' ' || text[i] == b'\t') {
            i += 1;
        }
        let mut value = Zeroizing::new(Vec::new());
        match text.get(i) {
            Some(&q) if q == b'\'' || q == b'"' => {
                i += 1;
                loop {
                    let Some(&c) = text.get(i) else {
                        return Err(err(start_line, "a quoted value is never closed"));
                    };
                    i += 1;
                    if c == q {
                        break;
                    }
                    if c == b'\n' {
                        line += 1;
                    }
                    if q == b'"' && c == b'\\' {
                        let Some(&e) = text.get(i) else {
                            return Err(err(line, "a quoted value is never closed"));
                        };
                        i += 1;
                        match e {
                            b'n' => value.push(b'\n'),
                            b'r' => value.push(b'\r'),
                            b't' => value.push(b'\t'),
                            b'"' | b'\\' | b'$' | b'\'' => value.push(e),
                            // A backslash at the end of a line joins it.
                            b'\n' => line += 1,
                            _ => value.extend_from_slice(&[b'\\', e]),
                        }
                        continue;
                    }
                    value.push(c);
                }
                // Only blanks or a comment may follow on that line.
                while i < text.len() && (text[i] == b' ' || text[i] == b'\t') {
                    i += 1;
                }
                match text.get(i) {
                    None | Some(b'\n') | Some(b'\r') => {}
                    Some(b'#') => {
                        while i < text.len() && text[i] != b'\n' {
                            i += 1;
                        }
                    }
                    Some(_) => return Err(err(line, "unexpected text after a quoted value")),
                }
            }
            _ => {
                let start = i;
                while i < text.len() && text[i] != b'\n' {
                    if text[i] == b'#' && i > start && matches!(text[i - 1], b' ' | b'\t') {
                        break;
                    }
                    i += 1;
                }
                let raw = &text[start..i];
                let end = raw
                    .iter()
                    .rposition(|c| !matches!(c, b' ' | b'\t' | b'\r'))
                    .map_or(0, |p| p + 1);
                value.extend_from_slice(&raw[..end]);
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
        }
        entries.push(Entry {
            key,
            value,
            line: start_line,
        });
    }
    Ok(entries)
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
