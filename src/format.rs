//! How numbers are shown to people, in one place: percentages, durations, mean ± std, and the
//! aligned text tables of the terminal.

/// A fraction as a percentage with two decimals (`97.12%`), or `–` when there is none.
pub fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", 100.0 * x))
        .unwrap_or_else(|| "–".into())
}

/// A metric's value as people read it: accuracies (names with `acc`, values in [0, 1]) as
/// percentages, counts (`epoch`, `step`) as integers, the rest with four decimals (or in
/// scientific notation when very small or large).
pub fn metric_text(name: &str, v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if name.contains("acc") && (0.0..=1.0).contains(&x) => pct(Some(x)),
        Some(x) if matches!(name, "epoch" | "step") && x.fract() == 0.0 => format!("{x}"),
        Some(x) if x != 0.0 && x.is_finite() && !(1e-3..1e5).contains(&x.abs()) => {
            format!("{x:.3e}")
        }
        Some(x) => format!("{}", (x * 1e4).round() / 1e4),
    }
}

/// Seconds as `12.3 s`, `4.5 min` or `1.25 h`.
pub fn duration(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.2} h", s / 3600.0)
    }
}

/// Short text of a value for names: `0.01`, `relu`, `[40,15]`.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Mean and sample standard deviation (n − 1; 0 for a single value), as reports of repeated
/// measurements (seeds, timings) state them.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// A plain aligned text table for the terminal.
pub fn text_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut s = line(headers);
    s += &line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in rows {
        s += &line(r);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_durations() {
        assert_eq!(pct(Some(0.9713)), "97.13%");
        assert_eq!(pct(None), "–");
        assert_eq!(duration(5.0), "5.0 s");
        assert_eq!(duration(90.0), "1.5 min");
        assert_eq!(duration(5400.0), "1.50 h");
    }

    #[test]
    fn mean_std_is_the_sample_std() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
    }

    #[test]
    fn text_tables_align_columns() {
        let t = text_table(
            &["a".into(), "bb".into()],
            &[vec!["ccc".into(), "d".into()]],
        );
        assert_eq!(t, "a    bb\n---  --\nccc  d\n");
    }
}
