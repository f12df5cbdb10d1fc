//! HTML building blocks: escaping, tables, the page frame.

use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A table with a header row; cells are escaped; cells that parse as numbers align right.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("</tr></thead><tbody>");
    for row in rows {
        s.push_str("<tr>");
        for cell in row {
            let class = if cell.trim_end_matches('%').parse::<f64>().is_ok() {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(s, "<td{class}>{}</td>", escape(cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A number with at most `digits` decimals and no trailing zeros.
pub fn num(value: f64, digits: usize) -> String {
    let s = format!("{value:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A whole page: title, a line under it, and the body sections.
pub fn page(title: &str, subtitle: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1><p>{s}</p></header>\
<main>{body}</main><footer>Made by tabtune {v}. Self-contained: no scripts, no network.</footer>\
</body></html>\n",
        t = escape(title),
        s = escape(subtitle),
        v = env!("CARGO_PKG_VERSION"),
    )
}

/// A section with a heading and an optional explanation.
pub fn section(heading: &str, note: &str, content: &str) -> String {
    let note = if note.is_empty() {
        String::new()
    } else {
        format!("<p class=\"note\">{}</p>", escape(note))
    };
    format!(
        "<section><h2>{}</h2>{note}{content}</section>",
        escape(heading)
    )
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;\
color:#1f2933;background:#f5f7fa}header{background:#243b53;color:#fff;padding:18px 32px}\
header h1{margin:0;font-size:22px}header p{margin:6px 0 0;color:#d9e2ec}main{padding:8px 32px;\
max-width:1100px}section{background:#fff;border-radius:8px;padding:12px 20px;margin:16px 0;\
box-shadow:0 1px 3px rgba(0,0,0,.08)}h2{font-size:18px;margin:6px 0 10px}.note{color:#52606d;\
font-size:13px;margin:0 0 10px}table{border-collapse:collapse;font-size:13px;margin:6px 0}\
th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left}td.n{text-align:right;\
font-variant-numeric:tabular-nums}th{background:#f0f4f8}svg{max-width:100%;height:auto}\
.charts{display:flex;flex-wrap:wrap;gap:12px}footer{color:#7b8794;font-size:12px;padding:12px 32px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(1.2300, 3), "1.23");
        assert_eq!(num(2.0, 2), "2");
        assert!(table(&["a"], &[vec!["<b>".into()]]).contains("&lt;b&gt;"));
    }
}
