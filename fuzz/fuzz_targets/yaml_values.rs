//! The YAML value layer on any text: a whole file as the loader reads it (`FileDoc`), free-form
//! `metadata` (`MetaValue`) and the typed scalars (`Scalar`). Invariants: no panic, no hang;
//! metadata printed back as YAML reads again as the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimiter::config::yaml::{self, MetaValue, Scalar};
use ratelimiter_fuzz::render;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = yaml::parse(text);
    let _ = serde_saphyr::from_str::<Scalar>(text);
    if let Ok(value) = serde_saphyr::from_str::<MetaValue>(text) {
        let printed = render::meta(&value);
        let again = serde_saphyr::from_str::<MetaValue>(&printed)
            .unwrap_or_else(|error| panic!("printed metadata is refused: {error}\n{printed}"));
        assert!(
            same(&value, &again),
            "{value:?}\nprinted {printed}\nread {again:?}"
        );
    }
});

/// Equality where NaN equals NaN.
fn same(a: &MetaValue, b: &MetaValue) -> bool {
    match (a, b) {
        (MetaValue::Number(x), MetaValue::Number(y)) => x == y || (x.is_nan() && y.is_nan()),
        (MetaValue::List(xs), MetaValue::List(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (MetaValue::Map(xs), MetaValue::Map(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}
