//! `ratelimiter validate`: every invalid fixture is rejected with the Go service's message,
//! prefixed by the file and followed by the position; the shipped examples are accepted.

use std::path::Path;
use std::process::{Command, Output};

fn validate(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .arg("validate")
        .arg(path)
        .output()
        .expect("the ratelimiter binary runs")
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// (fixture, message it must produce, line of the problem when the parser knows it)
const INVALID: &[(&str, &str, Option<usize>)] = &[
    ("bad_yaml.yaml", "error loading config file: ", Some(3)),
    (
        "empty_domain.yaml",
        "config file cannot have empty domain",
        Some(1),
    ),
    ("empty_key.yaml", "descriptor has empty key", Some(3)),
    (
        "duplicate_key.yaml",
        "duplicate descriptor composite key 'test-domain.key1_value1'",
        Some(8),
    ),
    (
        "bad_limit_unit.yaml",
        "invalid rate limit unit 'foo'",
        Some(5),
    ),
    ("missing_unit.yaml", "invalid rate limit unit ''", Some(5)),
    (
        "unlimited_with_unit.yaml",
        "should not specify rate limit unit when unlimited",
        Some(6),
    ),
    (
        "replaces_empty.yaml",
        "should not have an empty replaces entry",
        Some(9),
    ),
    (
        "replaces_self.yaml",
        "replaces should not contain name of same descriptor",
        Some(9),
    ),
    (
        "share_threshold_without_wildcard.yaml",
        "share_threshold can only be used with wildcard values (containing '*'), but found key 'files_report.pdf'",
        Some(3),
    ),
    (
        "misspelled_key.yaml",
        "config error, unknown key 'ratelimit' (did you mean 'rate_limit'?)",
        Some(4),
    ),
    (
        "misspelled_key2.yaml",
        "config error, unknown key 'requestsperunit' (did you mean 'requests_per_unit'?)",
        Some(6),
    ),
    (
        "non_string_key.yaml",
        "config error, key is not of type string: 0.25",
        Some(1),
    ),
    (
        "non_map_list.yaml",
        "config error, yaml file contains list of type other than map: a",
        Some(3),
    ),
    (
        "negative_requests_per_unit.yaml",
        "error loading config file: requests_per_unit must be an integer from 0 to 4294967295, found -5",
        Some(6),
    ),
    (
        "fractional_requests_per_unit.yaml",
        "error checking config: requests_per_unit must be an integer from 0 to 4294967295, found 1.5",
        Some(6),
    ),
    (
        "duplicate_yaml_key.yaml",
        "error loading config file: the key 'domain' appears twice in one mapping",
        Some(2),
    ),
    // Our extensions: limits the Go service cannot express, refused where they make no sense.
    (
        "burst_without_token_bucket.yaml",
        "burst can only be used with algorithm token_bucket",
        Some(7),
    ),
    (
        "unit_multiplier_zero.yaml",
        "unit_multiplier must be an integer from 1 to 4294967295, found 0",
        Some(6),
    ),
    (
        "bucket_window_over_a_year.yaml",
        "a window (unit x unit_multiplier) must be at most a year (31536000 seconds), found 135446088615120000 seconds",
        Some(6),
    ),
    (
        "limit_list_too_long.yaml",
        "a rate_limit list holds at most 16 limits, found 17",
        Some(5),
    ),
    (
        "replaces_own_list.yaml",
        "replaces should not contain name of same descriptor",
        Some(11),
    ),
    (
        "window_over_a_year.yaml",
        "a window (unit x unit_multiplier) must be at most a year (31536000 seconds), found 31622400 seconds",
        Some(7),
    ),
    (
        "empty_limit_list.yaml",
        "rate_limit list must not be empty",
        Some(5),
    ),
    (
        "unlimited_in_limit_list.yaml",
        "unlimited cannot be used in a rate_limit list",
        Some(7),
    ),
    (
        "algorithm_on_zero_requests.yaml",
        "an algorithm has no meaning with requests_per_unit 0, which refuses every request",
        Some(7),
    ),
    (
        "unknown_algorithm.yaml",
        "invalid rate limit algorithm 'leaky_bucket' (fixed_window, sliding_window or token_bucket)",
        Some(7),
    ),
    (
        "duplicate_limit_in_list.yaml",
        "duplicate limit in rate_limit list: sliding_window over 60 seconds",
        Some(6),
    ),
];

#[test]
fn every_invalid_fixture_is_rejected_with_its_message_and_position() {
    for (name, message, line) in INVALID {
        let path = fixture(&format!("invalid/{name}"));
        let output = validate(&path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        let expected_start = format!("{}: {message}", path.display());
        let line_of_error = stderr
            .lines()
            .find(|l| l.starts_with(&expected_start))
            .unwrap_or_else(|| {
                panic!("{name}: expected a line starting {expected_start:?}, got:\n{stderr}")
            });
        if let Some(line) = line {
            assert!(
                line_of_error.contains(&format!(" at line {line}, column ")),
                "{name}: expected line {line} in {line_of_error:?}"
            );
        }
        assert!(
            output.stdout.is_empty(),
            "{name}: nothing on stdout when invalid"
        );
    }
}

#[test]
fn a_domain_defined_in_two_files_is_reported_against_the_second_naming_the_first() {
    let output = validate(&fixture("duplicate_domain"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    let first = fixture("duplicate_domain/a_first.yaml");
    let second = fixture("duplicate_domain/b_second.yaml");
    assert_eq!(
        stderr.trim(),
        format!(
            "{}: duplicate domain 'test-domain' in config file (first defined in {})",
            second.display(),
            first.display()
        )
    );
}

#[test]
fn every_error_in_a_directory_is_printed() {
    let output = validate(&fixture("invalid"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    for (name, message, _) in INVALID {
        assert!(
            stderr.contains(&format!("{name}: {message}")),
            "{name} missing from:\n{stderr}"
        );
    }
}

#[test]
fn the_shipped_examples_are_valid() {
    let output = validate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "all rate limit configs ok\n"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_missing_path_is_an_error_not_an_empty_config() {
    let output = validate(Path::new("/nonexistent/ratelimit/config"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .starts_with("/nonexistent/ratelimit/config: cannot read config: ")
    );
}

#[test]
fn a_file_over_16_mib_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut text = String::from("domain: huge\n");
    text.push_str(&"#".repeat(16 * 1024 * 1024));
    std::fs::write(&path, text).unwrap();
    let output = validate(&path);
    assert_eq!(output.status.code(), Some(1));
    let expected = format!(
        "{}: file is more than the 16777216 bytes allowed",
        path.display()
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr).trim(), expected);
}

#[test]
fn without_a_path_validate_reads_config_as_serve_does() {
    let output = Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .arg("validate")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "all rate limit configs ok\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_misspelt_unit_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    let text = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: secnd, requests_per_unit: 1}\n";
    std::fs::write(&path, text).unwrap();
    let stderr = String::from_utf8_lossy(&validate(&path).stderr).into_owned();
    assert!(
        stderr.contains("invalid rate limit unit 'secnd' (did you mean 'second'?) at line 4"),
        "{stderr}"
    );
}
