//! Showing untrusted text to a person. A path, a name or a message that
//! came from a file, a client or the vault may hold characters that move
//! the cursor, erase or recolour the screen, or reorder and hide text
//! (bidi overrides, zero-width characters): printed raw, it can make a
//! screen show something else than what is true. Every human-readable
//! output passes such text through [`escape`]; paths holding such
//! characters are refused outright ([`is_deceptive`]).

use std::borrow::Cow;

/// Whether `c` can change what a terminal shows beyond itself: a C0 or C1
/// control character (escape sequences begin with one), DEL, or a Unicode
/// format character that reorders, joins or hides text.
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                  // soft hyphen
            | '\u{061C}'                // Arabic letter mark
            | '\u{180E}'                // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero-width characters, LRM, RLM
            | '\u{2028}'..='\u{202E}'   // separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'   // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}'                // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
            | '\u{034F}'                // combining grapheme joiner
            | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{110BD}'
            | '\u{13430}'..='\u{1343F}' // other format characters
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{180B}'..='\u{180D}'   // Mongolian variation selectors
            | '\u{FE00}'..='\u{FE0F}'   // variation selectors
            | '\u{1D173}'..='\u{1D17A}' // musical formatting
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
        )
}

/// Whether `text` holds any [`is_deceptive`] character.
pub fn has_deceptive(text: &str) -> bool {
    text.chars().any(is_deceptive)
}

/// `text` as it is safe to show: each [`is_deceptive`] character as
/// `\u{HEX}` (`\n`, `\t`, `\r` as such). Backslashes stay as they are, so
/// text that is already escaped (a `{:?}` in an error) is not escaped
/// twice. Text with nothing deceptive is returned as is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !has_deceptive(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_deceptive(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for text of several lines: each line escaped, the line breaks
/// kept (error messages with a hint, say).
pub fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| escape(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_drive_a_terminal() {
        assert_eq!(escape("/usr/local/bin/deploy"), "/usr/local/bin/deploy");
        assert_eq!(escape("/t/a\u{1b}[2Kb"), "/t/a\\u{1b}[2Kb");
        assert_eq!(escape("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(escape("a\\u{1b}"), "a\\u{1b}");
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape_lines("one\u{7}\ntwo"), "one\\u{7}\ntwo");
        assert!(has_deceptive("zero\u{200b}width"));
        assert!(!has_deceptive("ünïcödé/路径"));
    }

    proptest::proptest! {
        /// Whatever goes in, nothing deceptive comes out.
        #[test]
        fn escaped_text_is_inert(s in "\\PC*|[\\x00-\\x1f\\x7f-\\x9f\\u{200b}-\\u{206f}a-z/]*") {
            proptest::prop_assert!(!has_deceptive(&escape(&s)));
        }
    }
}
