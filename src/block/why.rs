//! `dnsveil why NAME`: which list and which rule block (or allow) a name, from the configuration
//! alone, without a running daemon.
//!
//! The lists are loaded as `run` loads them (files, and the last good copies of fetched lists;
//! nothing is fetched), and the closest rule of each kind is shown with its line from the list.

use std::fmt::Write;

use crate::wire::Name;

use super::index::Hit;
use super::load::{self, BlockSettings, ListSource};

/// The verdict for `name` and the rules behind it, as text for people.
pub fn explain(settings: &BlockSettings, name: &Name) -> Result<String, load::LoadError> {
    let (index, report) = load::build_index(settings)?;
    let (block, allow) = index.explain(name.as_wire());
    let shown = super::parse::dotted(name.to_lowercase().as_wire());
    let mut out = String::new();
    let rule = |hit: &Hit<'_>| {
        let text = rule_text(settings, hit).unwrap_or_default();
        format!(
            "{text:?} (list {}, line {}, matches {})",
            hit.list,
            hit.line,
            super::parse::dotted(hit.name)
        )
    };
    match (&block, &allow) {
        (Some(b), None) => {
            let _ = writeln!(out, "{shown}: blocked");
            let _ = writeln!(out, "  block rule: {}", rule(b));
        }
        (Some(b), Some(a)) => {
            let _ = writeln!(
                out,
                "{shown}: allowed (an allow rule wins over every block rule)"
            );
            let _ = writeln!(out, "  allow rule: {}", rule(a));
            let _ = writeln!(out, "  overrides block rule: {}", rule(b));
        }
        (None, Some(a)) => {
            let _ = writeln!(out, "{shown}: not blocked (no block rule)");
            let _ = writeln!(out, "  allow rule: {}", rule(a));
        }
        (None, None) => {
            let _ = writeln!(out, "{shown}: not blocked (no rule)");
        }
    }
    let _ = writeln!(
        out,
        "  lists: {}, blocked names: {}, allowed names: {}",
        report.lists.len(),
        report.blocked,
        report.allowed
    );
    for l in report.lists.iter().filter(|l| l.not_fetched) {
        let _ = writeln!(
            out,
            "  note: {} has not been fetched yet (no copy on disk)",
            l.name
        );
    }
    Ok(out)
}

/// The text of the rule's line in its list (trimmed), if the list can still be read.
fn rule_text(settings: &BlockSettings, hit: &Hit<'_>) -> Option<String> {
    let source = settings
        .lists
        .iter()
        .chain(&settings.allow)
        .find(|s| s.to_string() == hit.list)?;
    let path = match source {
        ListSource::File(p) => p.clone(),
        ListSource::Url(u) => settings.copy_path(u),
    };
    let text = load::read_list("", &path).ok()?;
    let line = text
        .split(|&b| b == b'\n')
        .nth(hit.line.checked_sub(1)? as usize)?;
    Some(String::from_utf8_lossy(line).trim().to_string())
}
