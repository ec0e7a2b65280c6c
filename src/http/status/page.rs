//! The status pages' templates: `{{name}}` placeholders, filled in one pass.
//!
//! A [`Value::Text`] is HTML-escaped where it is inserted; a
//! [`Value::Html`] is a fragment (table rows) built in this module from
//! escaped parts. A placeholder with no value is left as written, so a
//! template shows its own typo instead of silently losing text. Values are
//! never scanned again, so a value that contains `{{` stays text.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// One placeholder's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Plain text: escaped on insertion.
    Text(String),
    /// Markup made by this module from escaped parts.
    Html(String),
}

pub type Vars = BTreeMap<&'static str, Value>;

/// Fills every `{{name}}` (inner spaces allowed) that `vars` knows.
pub fn render(template: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        match vars.get(name) {
            Some(Value::Text(text)) => out.push_str(&escape(text)),
            Some(Value::Html(html)) => out.push_str(html),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Escapes the five characters that matter in HTML text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One table row; every cell is escaped.
pub fn row(class: &str, cells: &[&str]) -> String {
    let mut html = format!("<tr class=\"{}\">", escape(class));
    for cell in cells {
        html.push_str("<td>");
        html.push_str(&escape(cell));
        html.push_str("</td>");
    }
    html.push_str("</tr>\n");
    html
}

/// A row with one cell spanning `columns`, for "nothing to show".
pub fn empty_row(columns: usize, text: &str) -> String {
    format!(
        "<tr class=\"empty\"><td colspan=\"{columns}\">{}</td></tr>\n",
        escape(text)
    )
}

/// Unix seconds as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(unix: i64) -> String {
    match u64::try_from(unix) {
        Ok(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        Err(_) => "before 1970".into(),
    }
}

/// `3d 4h`, `4h 5m`, `5m 6s`, `6s`: the two largest units.
pub fn short_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `2026-11-24T10:00:00Z (42s ago)`, or `in 3d 4h` for a future time.
pub fn when(unix: i64, now: i64) -> String {
    let delta = now.saturating_sub(unix);
    if delta >= 0 {
        format!("{} ({} ago)", rfc3339(unix), short_duration(delta as u64))
    } else {
        format!(
            "{} (in {})",
            rfc3339(unix),
            short_duration(delta.unsigned_abs())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, Value)]) -> Vars {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn fills_known_placeholders_and_escapes_text() {
        let v = vars(&[
            ("name", Value::Text("<b>\"x\" & 'y'</b>".into())),
            ("rows", Value::Html("<tr></tr>".into())),
        ]);
        assert_eq!(
            render("a {{name}} b {{ rows }} c", &v),
            "a &lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt; b <tr></tr> c"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_stay_as_written() {
        let v = vars(&[("a", Value::Text("1".into()))]);
        assert_eq!(render("{{b}} {{a}} {{a", &v), "{{b}} 1 {{a");
        assert_eq!(render("no placeholders", &v), "no placeholders");
        assert_eq!(render("{{}}", &v), "{{}}");
    }

    #[test]
    fn values_are_not_scanned_again() {
        let v = vars(&[
            ("a", Value::Text("{{b}}".into())),
            ("b", Value::Text("boom".into())),
        ]);
        assert_eq!(render("{{a}}", &v), "{{b}}");
    }

    #[test]
    fn rows_escape_every_cell() {
        assert_eq!(
            row("k", &["<i>", "a&b"]),
            "<tr class=\"k\"><td>&lt;i&gt;</td><td>a&amp;b</td></tr>\n"
        );
        assert!(empty_row(3, "<none>").contains("colspan=\"3\">&lt;none&gt;<"));
    }

    #[test]
    fn times_read_well() {
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(short_duration(5), "5s");
        assert_eq!(short_duration(65), "1m 5s");
        assert_eq!(short_duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(short_duration(2 * 86400 + 3600), "2d 1h");
        assert_eq!(when(100, 142), "1970-01-01T00:01:40Z (42s ago)");
        assert_eq!(when(200, 100), "1970-01-01T00:03:20Z (in 1m 40s)");
    }
}
