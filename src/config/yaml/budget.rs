//! What parsing one config file may cost: in proportion to its size, so that a small file
//! cannot expand into a large document (a YAML alias bomb: anchors that alias each other,
//! doubling at every step), and deep enough for rules as deep as the deepest request. A file
//! over a bound gets a message that says which bound and what to do, not the parser's names.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Budget, Error, Options};

/// Nesting a file may reach. Each descriptor level is a list item (a map) inside a list, two
/// levels; 64 descriptor levels, their `rate_limit` and `metadata` fit, which is twice the
/// default `--max-entries` (a request cannot match a rule deeper than its entries).
pub const MAX_DEPTH: usize = 160;

/// Parser events and nodes a file may produce beyond one per byte of its text: every event
/// or node written out takes at least a byte, so only aliases can pass that.
const SLACK: usize = 10_000;

/// The parser's options for a file of `bytes` bytes.
pub fn options(bytes: usize) -> Options {
    let within = bytes.saturating_add(SLACK);
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_events = within;
    budget.max_nodes = within;
    budget.max_recorded_anchor_events = within;
    budget.max_recorded_anchor_bytes = bytes.saturating_mul(4).saturating_add(SLACK);
    let mut options = Options::default();
    options.budget = Some(budget);
    options
}

/// The bound a parse went over, if that is why it failed (under the parser's wrappers that
/// add a snippet or the alias that led there).
pub fn breach(mut error: &Error) -> Option<&BudgetBreach> {
    loop {
        match error {
            Error::Budget { breach, .. } => return Some(breach),
            Error::WithSnippet { error: inner, .. } | Error::AliasError { error: inner, .. } => {
                error = inner
            }
            _ => return None,
        }
    }
}

/// The operator's words for a bound a file went over.
pub fn explain(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { .. } => format!(
            "the file nests more than {MAX_DEPTH} levels deep (about {} descriptor levels), more than a config may",
            MAX_DEPTH / 2 - 16
        ),
        BudgetBreach::Events { .. }
        | BudgetBreach::Nodes { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. }
        | BudgetBreach::Aliases { .. }
        | BudgetBreach::AliasAnchorRatio { .. } => {
            "the file's anchors and aliases (&name, *name) expand to far more than the file holds; write the repeated parts out, or alias fewer times".into()
        }
        other => format!("the file goes over a bound of the YAML parser ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_cannot_expand_into_a_large_document() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, previous) in ["b", "c", "d", "e", "f", "g"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f"])
        {
            let aliases = vec![format!("*{previous}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{aliases}]\n"));
        }
        let parsed = serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(
            &bomb,
            options(bomb.len()),
        );
        let Some(breach) = parsed.as_ref().err().and_then(breach) else {
            panic!("a {}-byte alias bomb was parsed: {parsed:?}", bomb.len());
        };
        assert!(explain(breach).contains("aliases"), "{breach:?}");
    }
}
