//! Output masking: a streaming filter that replaces each secret value, and
//! the forms a program most often prints it in, with `****`.
//!
//! For each value of at least [`MIN_LEN`] bytes the patterns are: the raw
//! bytes; standard and URL-safe base64 of the value, whole and cut to the
//! characters the value alone determines (so `base64` of the value
//! followed by a newline loses all but at most 4 bits of it too); lower-
//! and upper-case hex; percent-encoding (upper- and lower-case escapes). Shorter values are not masked: a 1–5 byte pattern would hit
//! ordinary output all the time, corrupting it and, by where the stars
//! fall, hinting at the value — and a value that short is guessable anyway.
//!
//! Streaming with bounded memory: each chunk is searched together with the
//! bytes held back from the previous one, and only the shortest tail that
//! could still begin a pattern is held back. So output is passed on as
//! soon as it cannot be part of a value (a line-buffered program's lines
//! appear as they are written), a value split across writes is still
//! found, and memory is one chunk plus the longest pattern.
//!
//! The filter holds the patterns for the program's lifetime, in the
//! non-dumpable process that waits for it; [`Masker`]'s own copies are
//! wiped on drop (the matcher's internal tables are not).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use zeroize::Zeroizing;

/// Values shorter than this are not masked (see the module comment).
pub const MIN_LEN: usize = 6;

/// What replaces a value.
pub const STARS: &[u8] = b"****";

/// The patterns of a set of values.
pub struct Masker {
    matcher: AhoCorasick,
    patterns: Vec<Zeroizing<Vec<u8>>>,
    longest: usize,
    /// Which bytes begin some pattern.
    first: [bool; 256],
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} patterns, [redacted])", self.patterns.len())
    }
}

/// One output stream's held-back tail.
#[derive(Default)]
pub struct Stream {
    held: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({} bytes held, [redacted])", self.held.len())
    }
}

impl Masker {
    /// The filter for `values`; `None` if none is long enough to mask.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Masker> {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for v in values.into_iter().filter(|v| v.len() >= MIN_LEN) {
            for p in forms(v) {
                if p.len() >= MIN_LEN && !patterns.iter().any(|q| **q == *p) {
                    patterns.push(p);
                }
            }
        }
        if patterns.is_empty() {
            return None;
        }
        // A contiguous NFA: built in microseconds (a DFA takes about a
        // millisecond for these patterns, on every exec), and with the
        // prefilter it still searches at gigabytes per second.
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns.iter().map(|p| p.as_slice()))
            .expect("a few short literal patterns always build");
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut first = [false; 256];
        for p in &patterns {
            first[usize::from(p[0])] = true;
        }
        Some(Masker {
            matcher,
            patterns,
            longest,
            first,
        })
    }

    /// Filters `input` (the next bytes of `stream`) into `out`: everything
    /// that can no longer be part of a value, with values replaced.
    pub fn feed(&self, stream: &mut Stream, input: &[u8], out: &mut Vec<u8>) {
        let mut buf = std::mem::take(&mut stream.held);
        buf.extend_from_slice(input);
        let kept = self.filter(&buf, false, out);
        stream.held = Zeroizing::new(buf[kept..].to_vec());
    }

    /// The end of the stream: whatever was held back, filtered.
    pub fn finish(&self, stream: &mut Stream, out: &mut Vec<u8>) {
        let buf = std::mem::take(&mut stream.held);
        self.filter(&buf, true, out);
    }

    /// Writes the filtered part of `buf` to `out`; returns where the
    /// held-back tail starts (`buf.len()` at the end of the stream).
    fn filter(&self, buf: &[u8], end: bool, out: &mut Vec<u8>) -> usize {
        // A value that may continue past `buf` starts at `hold` or later;
        // a match starting before it cannot grow (it would be a prefix of
        // a longer pattern starting there, so `hold` would be earlier).
        let hold = if end {
            buf.len()
        } else {
            self.hold_from(buf, 0)
        };
        let mut emitted = 0;
        for m in self.matcher.find_iter(buf) {
            if m.start() >= hold {
                break;
            }
            out.extend_from_slice(&buf[emitted..m.start()]);
            out.extend_from_slice(STARS);
            emitted = m.end();
        }
        let cut = if end {
            buf.len()
        } else {
            self.hold_from(buf, emitted)
        };
        out.extend_from_slice(&buf[emitted..cut]);
        cut
    }

    /// The first position at or after `from` where the rest of `buf` is a
    /// proper prefix of some pattern (`buf.len()` if none).
    fn hold_from(&self, buf: &[u8], from: usize) -> usize {
        let start = from.max(buf.len().saturating_sub(self.longest - 1));
        (start..buf.len())
            .find(|&p| {
                self.first[usize::from(buf[p])]
                    && self
                        .patterns
                        .iter()
                        .any(|pat| pat.len() > buf.len() - p && pat.starts_with(&buf[p..]))
            })
            .unwrap_or(buf.len())
    }
}

/// The forms of one value that are masked.
fn forms(v: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // The last character of an unpadded tail also carries bits of what
    // follows; the cut form stops before it.
    let determined = v.len() / 3 * 4 + v.len() % 3;
    let cut = |mut b: Zeroizing<Vec<u8>>| {
        b.truncate(determined);
        b
    };
    vec![
        Zeroizing::new(v.to_vec()),
        base64(v, STD),
        base64(v, URL),
        cut(base64(v, STD)),
        cut(base64(v, URL)),
        hex(v, b"0123456789abcdef"),
        hex(v, b"0123456789ABCDEF"),
        percent(v, b"0123456789ABCDEF"),
        percent(v, b"0123456789abcdef"),
    ]
}

/// Base64 without padding (written by hand: a few lines, and the result
/// must live in a wiped buffer).
fn base64(v: &[u8], alphabet: &[u8; 64]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(v.len().div_ceil(3) * 4));
    for g in v.chunks(3) {
        let b = |i: usize| u32::from(g.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= g.len() {
                out.push(alphabet[(n >> shift) as usize & 63]);
            }
        }
    }
    out
}

fn hex(v: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(v.len() * 2));
    for b in v {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 15)]);
    }
    out
}

/// RFC 3986 percent-encoding: unreserved bytes kept, the rest `%XX`.
fn percent(v: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(v.len() * 3));
    for &b in v {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 15)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(m: &Masker, chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = Stream::default();
        let mut out = Vec::new();
        for c in chunks {
            m.feed(&mut s, c, &mut out);
        }
        m.finish(&mut s, &mut out);
        out
    }

    #[test]
    fn masks_every_form() {
        let v = b"s3cr3t/+ value?";
        let m = Masker::new([&v[..]]).unwrap();
        for form in forms(v) {
            let text = [b"a ", form.as_slice(), b" b"].concat();
            assert_eq!(
                run(&m, &[&text]),
                b"a **** b",
                "{:?}",
                String::from_utf8_lossy(&form)
            );
        }
        // base64 of the value and a newline (what `echo $V | base64`
        // prints) keeps at most one character, 4 bits of the value.
        for v in [
            &b"s3cr3t/+ value?"[..],
            b"s3cr3t/+ value?x",
            b"s3cr3t/+ value?xy",
        ] {
            let m = Masker::new([v]).unwrap();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let encoded = base64(&[v, b"\n"].concat(), alphabet);
            let out = run(&m, &[&encoded]);
            assert!(out.starts_with(STARS), "{}", String::from_utf8_lossy(&out));
            assert!(
                out.len() <= STARS.len() + 3,
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn short_values_are_not_masked() {
        assert!(Masker::new([&b"12345"[..]]).is_none());
        let m = Masker::new([&b"12345"[..], b"longer-one"]).unwrap();
        assert_eq!(run(&m, &[b"12345 longer-one"]), b"12345 ****");
    }

    #[test]
    fn lines_pass_at_once_and_prefixes_wait() {
        let m = Masker::new([&b"sk-secret-value"[..]]).unwrap();
        let mut s = Stream::default();
        let mut out = Vec::new();
        m.feed(&mut s, b"hello\n", &mut out);
        assert_eq!(out, b"hello\n", "a line was held back");
        out.clear();
        m.feed(&mut s, b"token: sk-sec", &mut out);
        assert_eq!(
            out, b"token: ",
            "a possible prefix of the value was let through"
        );
        out.clear();
        m.feed(&mut s, b"ret-value done\n", &mut out);
        assert_eq!(out, b"**** done\n");
        out.clear();
        m.feed(&mut s, b"sk-s", &mut out);
        m.finish(&mut s, &mut out);
        assert_eq!(out, b"sk-s", "the end of the stream lost bytes");
    }

    #[test]
    fn a_longer_value_sharing_a_prefix_is_not_cut_short() {
        let m = Masker::new([&b"abcdef"[..], b"abcdefgh12"]).unwrap();
        assert_eq!(run(&m, &[b"x abcdefg", b"h12 y"]), b"x **** y");
        assert_eq!(run(&m, &[b"x abcdef", b" y"]), b"x **** y");
    }

    proptest! {
        /// However the output is cut into chunks, the result is the same
        /// as filtering it whole, and no value survives.
        #[test]
        fn chunking_never_matters(
            value in proptest::collection::vec(any::<u8>(), 6..40),
            noise in proptest::collection::vec(any::<u8>(), 0..200),
            at in any::<prop::sample::Index>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let m = Masker::new([value.as_slice()]).unwrap();
            let pos = at.index(noise.len() + 1);
            let text = [&noise[..pos], value.as_slice(), &noise[pos..]].concat();
            let whole = run(&m, &[&text]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&text[last..p]);
                last = p;
            }
            chunks.push(&text[last..]);
            prop_assert_eq!(&run(&m, &chunks), &whole);
            prop_assert!(!whole.windows(value.len()).any(|w| w == value.as_slice()));
        }
    }
}
