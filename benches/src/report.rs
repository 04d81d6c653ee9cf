//! Writing `BENCHMARKS.md`: generated sections between markers, tables, ratios.
//!
//! A generated section sits between `<!-- loadgen:NAME:begin -->` and
//! `<!-- loadgen:NAME:end -->`; everything outside the markers (the analysis) is written by
//! hand and kept as it is.

use std::path::Path;

/// Replaces the section `name` of `doc` with `body`, or appends it when the markers are
/// missing.
#[must_use]
pub fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- loadgen:{name}:begin -->");
    let end = format!("<!-- loadgen:{name}:end -->");
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{section}{}", &doc[..b], &doc[e + end.len()..])
        }
        _ => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

/// Rewrites the section `name` of the file at `path` (created when absent).
///
/// # Errors
/// When the file cannot be read or written.
pub fn write_section(path: &Path, name: &str, body: &str) -> std::io::Result<()> {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, replace_section(&doc, name, body))
}

/// A Markdown table.
#[must_use]
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", headers.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        headers.iter().map(|_| "---|").collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// `a / b` as `1.23×`, or `n/a` when either is missing or zero.
#[must_use]
pub fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
        let r = a / b;
        if r >= 100.0 {
            format!("{r:.0}×")
        } else if r >= 10.0 {
            format!("{r:.1}×")
        } else {
            format!("{r:.2}×")
        }
    } else {
        "n/a".into()
    }
}

/// A number with a sensible number of digits.
#[must_use]
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place() {
        let doc = "intro\n<!-- loadgen:a:begin -->\nold\n<!-- loadgen:a:end -->\noutro\n";
        let doc = replace_section(doc, "a", "new");
        assert_eq!(
            doc,
            "intro\n<!-- loadgen:a:begin -->\nnew\n<!-- loadgen:a:end -->\noutro\n"
        );
        let doc = replace_section(&doc, "b", "more");
        assert!(doc.ends_with("<!-- loadgen:b:begin -->\nmore\n<!-- loadgen:b:end -->\n"));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(2.0, 1.0), "2.00×");
        assert_eq!(ratio(150.0, 1.0), "150×");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }
}
