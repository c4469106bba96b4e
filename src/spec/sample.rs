//! Random sampling of a sweep's space. Draw `index` comes from its own ChaCha stream, seeded by
//! `search_seed` and set to `index`, so the same file gives the same trials on every machine and
//! raising `count` keeps the first trials. Real values are rounded to 4 significant digits: the
//! names stay readable and a value reads back as written.

use super::{Distribution, Param};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// `x` rounded to `digits` significant digits (through decimal text, so on every platform alike).
pub fn significant(x: f64, digits: usize) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{:.*e}", digits - 1, x).parse().unwrap_or(x)
}

/// A JSON number for a real value.
fn real(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// One value of a distribution.
fn value(dist: &Distribution, rng: &mut ChaCha8Rng) -> Value {
    match dist {
        Distribution::Values { values } => values[rng.random_range(0..values.len())].clone(),
        Distribution::Uniform { min, max } => {
            let x = min + (max - min) * rng.random::<f64>();
            real(significant(x, 4).clamp(*min, *max))
        }
        Distribution::LogUniform { min, max } => {
            let (lo, hi) = (min.ln(), max.ln());
            let x = (lo + (hi - lo) * rng.random::<f64>()).exp();
            real(significant(x, 4).clamp(*min, *max))
        }
        Distribution::IntUniform { min, max } => Value::from(rng.random_range(*min..=*max)),
        Distribution::IntLogUniform { min, max } => {
            // Uniform in log over [min, max + 1), floored: every whole number can come out.
            let (lo, hi) = ((*min as f64).ln(), (*max as f64 + 1.0).ln());
            let x = (lo + (hi - lo) * rng.random::<f64>()).exp().floor() as i64;
            Value::from(x.clamp(*min, *max))
        }
        Distribution::QUniform { min, max, q } => {
            let x = min + (max - min) * rng.random::<f64>();
            let steps = ((x - min) / q).round();
            real(significant(min + steps * q, 12).clamp(*min, *max))
        }
    }
}

/// Draw `index` of a sweep: one value per key of the space, in the space's order.
pub fn draw(space: &[Param], seed: u64, index: u64) -> Vec<(String, Value)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    space
        .iter()
        .map(|p| (p.key.clone(), value(&p.dist, &mut rng)))
        .collect()
}

/// The first `count` distinct draws, in draw order (a draw equal to an earlier one is skipped,
/// so it never yields two trials with one id). An error when the space seems to hold fewer
/// distinct points than `count`.
pub fn distinct_draws(
    space: &[Param],
    seed: u64,
    count: usize,
) -> Result<Vec<Vec<(String, Value)>>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    let tries = count.saturating_mul(50).saturating_add(1000) as u64;
    for index in 0..tries {
        if out.len() == count {
            break;
        }
        let d = draw(space, seed, index);
        if seen.insert(serde_json::to_string(&d).unwrap_or_default()) {
            out.push(d);
        }
    }
    if out.len() < count {
        return Err(format!(
            "the space gave only {} distinct trials in {tries} draws; lower `count` to at most {} or widen the space",
            out.len(),
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Pos;

    fn param(dist: Distribution) -> Vec<Param> {
        vec![Param {
            key: "x".into(),
            dist,
            pos: Pos::default(),
        }]
    }

    fn numbers(space: &[Param], n: u64) -> Vec<f64> {
        (0..n)
            .map(|i| draw(space, 7, i)[0].1.as_f64().unwrap())
            .collect()
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let space = param(Distribution::Uniform { min: 0.0, max: 1.0 });
        assert_eq!(draw(&space, 7, 3), draw(&space, 7, 3));
        assert_ne!(draw(&space, 7, 3), draw(&space, 8, 3));
        assert_ne!(draw(&space, 7, 3), draw(&space, 7, 4));
    }

    #[test]
    fn bounds_hold_over_many_draws_and_reach_both_ends() {
        let ints = numbers(&param(Distribution::IntUniform { min: -2, max: 3 }), 5000);
        assert!(
            ints.iter()
                .all(|x| (-2.0..=3.0).contains(x) && x.fract() == 0.0)
        );
        assert!(ints.contains(&-2.0) && ints.contains(&3.0));
        let ilog = numbers(
            &param(Distribution::IntLogUniform { min: 16, max: 512 }),
            5000,
        );
        assert!(
            ilog.iter()
                .all(|x| (16.0..=512.0).contains(x) && x.fract() == 0.0)
        );
        assert!(ilog.contains(&16.0) && ilog.iter().any(|x| *x > 480.0));
        let uni = numbers(&param(Distribution::Uniform { min: 0.0, max: 0.5 }), 5000);
        assert!(uni.iter().all(|x| (0.0..=0.5).contains(x)));
        let q = numbers(
            &param(Distribution::QUniform {
                min: 0.1,
                max: 0.9,
                q: 0.2,
            }),
            2000,
        );
        for x in &q {
            assert!(
                [0.1, 0.3, 0.5, 0.7, 0.9].contains(x),
                "{x} is not on the 0.2 grid"
            );
        }
    }

    #[test]
    fn log_uniform_is_uniform_in_log() {
        let xs = numbers(
            &param(Distribution::LogUniform {
                min: 1e-4,
                max: 1e-1,
            }),
            10_000,
        );
        assert!(xs.iter().all(|x| (1e-4..=1e-1).contains(x)));
        // Each decade gets a third of the draws; a plain uniform would put 90% in the last.
        for (lo, hi) in [(1e-4, 1e-3), (1e-3, 1e-2), (1e-2, 1e-1)] {
            let share = xs.iter().filter(|x| (lo..hi).contains(*x)).count() as f64 / 1e4;
            assert!((share - 1.0 / 3.0).abs() < 0.03, "{lo}..{hi}: {share}");
        }
    }

    #[test]
    fn values_are_each_chosen_and_draws_are_distinct() {
        let space = param(Distribution::Values {
            values: vec![Value::from("a"), Value::from("b"), Value::from("c")],
        });
        let three = distinct_draws(&space, 1, 3).unwrap();
        let mut got: Vec<String> = three.iter().map(|d| d[0].1.to_string()).collect();
        got.sort();
        assert_eq!(got, ["\"a\"", "\"b\"", "\"c\""]);
        let err = distinct_draws(&space, 1, 4).unwrap_err();
        assert!(err.contains("only 3 distinct"), "{err}");
    }
}
