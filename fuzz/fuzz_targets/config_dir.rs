//! The config loader on a whole directory: the input is cut at NUL bytes into files (`00.yaml`,
//! `01.yaml`, ...; NUL cannot appear in YAML), written to a directory and loaded as the service
//! loads it. Invariants: loading from disk and from memory agree; an accepted config, printed
//! back as YAML, loads again with the same rules and the same `/rlconfig` dump.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimiter::config::{self, Config, ConfigError};
use ratelimiter_fuzz::render;

/// At most this many files, as a directory of limits has a handful.
const MAX_FILES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let files: Vec<&[u8]> = data.split(|&byte| byte == 0).take(MAX_FILES).collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (index, contents) in files.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{index:02}.yaml")), contents)
            .expect("a file in the temporary directory");
    }
    let loaded = config::load(dir.path(), config::Layout::default());

    // From memory, the same files give the same answer (when they are all UTF-8).
    let names: Vec<String> = (0..files.len())
        .map(|index| {
            dir.path()
                .join(format!("{index:02}.yaml"))
                .display()
                .to_string()
        })
        .collect();
    let texts: Option<Vec<&str>> = files
        .iter()
        .map(|file| std::str::from_utf8(file).ok())
        .collect();
    if let Some(texts) = texts {
        let in_memory = Config::from_sources(names.iter().map(String::as_str).zip(texts));
        match (&loaded, &in_memory) {
            (Ok(a), Ok(b)) => assert_eq!(render::summary(a), render::summary(b)),
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("disk and memory disagree: {loaded:?} vs {in_memory:?}"),
        }
    }

    let Ok(config) = loaded else {
        let errors = loaded.unwrap_err();
        assert!(
            !errors.is_empty(),
            "a refused config names at least one error"
        );
        for error in &errors {
            assert!(!error.message.is_empty(), "every error says what is wrong");
        }
        return;
    };
    reloads_the_same(&config);
});

/// The config printed back as YAML loads again to the same rules and the same dump.
fn reloads_the_same(config: &Config) {
    let printed = render::config_files(config);
    let again = Config::from_sources(
        printed
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    )
    .unwrap_or_else(|errors: Vec<ConfigError>| {
        panic!("the printed config is refused: {errors:?}\n{printed:#?}")
    });
    assert_eq!(config.rlconfig(), again.rlconfig(), "{printed:#?}");
    assert_eq!(
        render::summary(config),
        render::summary(&again),
        "{printed:#?}"
    );
}
