//! Every metric name the service defines, read from the sources in `src/metrics/`, so that the
//! README and the examples can be checked against them.

const SOURCES: [&str; 2] = [
    include_str!("../../src/metrics/mod.rs"),
    include_str!("../../src/metrics/rules.rs"),
];

pub fn defined() -> Vec<String> {
    SOURCES
        .iter()
        .flat_map(|source| {
            let definitions = source.split("#[cfg(test)]").next().unwrap_or_default();
            definitions
                .split('"')
                .filter(|text| {
                    text.starts_with("ratelimit")
                        && text.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}
