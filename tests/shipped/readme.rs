//! The README's config example is a valid config, so newcomers never copy a broken one; the
//! metrics table lists every metric; every link of the README and docs/ leads somewhere.

use std::path::{Path, PathBuf};

use crate::common;

#[test]
fn the_readme_config_example_loads() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```yaml\n")
        .expect("the README has a YAML example")
        + "```yaml\n".len();
    let length = readme[start..].find("```").unwrap();
    let example = &readme[start..start + length];
    let config = ratelimiter::config::Config::from_sources([("README.md", example)]);
    let config = config.unwrap_or_else(|errors| panic!("{errors:?}"));
    assert_eq!(config.domains()[0].rules.len(), 8);
}

#[test]
fn the_metrics_page_documents_every_metric() {
    let readme = include_str!("../../docs/metrics.md");
    let names = common::metric_names::defined();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is missing from the metrics table of docs/metrics.md"
        );
    }
}

/// The README and every Markdown page of docs/.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// Every `[text](target)` link of a Markdown text (code spans and blocks left out).
fn links(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_of_the_readme_and_docs_leads_somewhere() {
    let pages = pages();
    assert!(pages.len() >= 9, "{pages:?}");
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            // Other sites are not reachable from the test machine; their addresses are not checked.
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(target.exists(), "{}: {link} leads nowhere", page.display());
            if !fragment.is_empty() {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                assert!(
                    headings.iter().any(|heading| heading == fragment),
                    "{}: {link}: no such heading in {} ({headings:?})",
                    page.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links checked");
}

#[test]
fn the_readme_fits_in_a_head() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.len() < 10_000,
        "the README is {} bytes",
        readme.len()
    );
}
