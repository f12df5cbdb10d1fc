//! Values quoted in messages: a 50 MB cell or a header of a million names must not make a
//! 50 MB error message. Long values are cut, and the message says how long they were.

use std::borrow::Cow;

/// The most bytes of a value a message quotes.
pub const MAX_QUOTED_BYTES: usize = 200;
/// The most names a message lists (the rest are counted).
pub const MAX_LISTED: usize = 20;

/// `text` when it is at most [`MAX_QUOTED_BYTES`] long, else its start (cut at a character
/// boundary) followed by `… (N bytes in all)`.
pub fn clip(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_QUOTED_BYTES {
        return Cow::Borrowed(text);
    }
    let mut cut = MAX_QUOTED_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes in all)", &text[..cut], text.len()))
}

/// The first [`MAX_LISTED`] items joined by `, `, then `… and N more` when there are more.
pub fn list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    let mut more = 0usize;
    for (i, item) in items.into_iter().enumerate() {
        if i < MAX_LISTED {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&clip(item.as_ref()));
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out.push_str(&format!(" … and {more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_with_their_length() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(1000);
        let clipped = clip(&long);
        assert!(clipped.len() < MAX_QUOTED_BYTES + 40, "{clipped}");
        assert!(clipped.ends_with("… (2000 bytes in all)"), "{clipped}");
        assert!(clipped.starts_with("éé"));
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        assert_eq!(list(["a", "b"]), "a, b");
        let names: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let text = list(&names);
        assert!(
            text.starts_with("c0, c1,") && text.ends_with("… and 980 more"),
            "{text}"
        );
    }
}
