//! The README's config example is a valid config, so newcomers never copy a broken one, and its
//! metrics table lists every metric.

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
fn the_readme_documents_every_metric() {
    let readme = include_str!("../../README.md");
    let names = common::metric_names::defined();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is missing from the README's metrics table"
        );
    }
}
