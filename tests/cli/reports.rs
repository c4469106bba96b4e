//! Reports from scripted sweeps: the Polars tables and their types, the report's sections, the
//! side-by-side comparison, and snapshots of the Markdown and of the errors users read.

use super::common::{Sweep, bin, scripted, write};
use polars::prelude::*;

const REP: &str = "name: rep\ndescription: scripted\nfixed: {epochs: 3}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01]\nseeds: [1, 2]\nreport: {threshold: 0.52, threshold_metric: val_accuracy}\n";

fn parquet(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

#[test]
fn report_tables_and_sections_hold_the_results() {
    let s = Sweep::new(REP);
    s.run(&scripted(0));
    let dir = s.dir();
    let df = parquet(&dir.join("summary.parquet"));
    assert_eq!(df.height(), 4);
    let schema = df.schema();
    assert_eq!(
        schema.get("optimizer.learning_rate"),
        Some(&DataType::Float64)
    );
    assert_eq!(schema.get("seed"), Some(&DataType::Int64));
    assert_eq!(schema.get("test_accuracy"), Some(&DataType::Float64));
    assert_eq!(schema.get("epochs_run"), Some(&DataType::Int64));
    assert_eq!(schema.get("status"), Some(&DataType::String));
    let col = df.column("test_accuracy").unwrap().f64().unwrap().clone();
    let acc: Vec<Option<f64>> = (0..col.len()).map(|i| col.get(i)).collect();
    assert!(
        acc.iter()
            .all(|a| a.is_some_and(|a| (a - 0.89).abs() < 0.02)),
        "{acc:?}"
    );
    // The first epoch at which val accuracy reaches 0.52: scripted val is 0.5, so never.
    let reach = df.column("epoch_reaching_threshold").unwrap();
    assert_eq!(reach.null_count(), 4);
    assert_eq!(parquet(&dir.join("epochs.parquet")).height(), 12);
    let grouped = std::fs::read_to_string(dir.join("summary_by_setting.csv")).unwrap();
    assert!(
        grouped
            .lines()
            .next()
            .unwrap()
            .contains("test_accuracy_mean"),
        "{grouped}"
    );
    assert_eq!(grouped.lines().count(), 3);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for section in [
        "# Sweep `rep`",
        "## Results",
        "## Over seeds",
        "## Learning curves",
        "## Best trial",
    ] {
        assert!(md.contains(section), "report lacks {section}:\n{md}");
    }
    let plot = std::fs::read_to_string(dir.join("plots/vs-optimizer-learning_rate.svg")).unwrap();
    assert!(plot.contains("Test accuracy vs optimizer.learning_rate"));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("class=\"best\""));
    // Comparison of two sweeps.
    let out = s.tmp.path().to_str().unwrap();
    bin()
        .args([
            "report",
            dir.to_str().unwrap(),
            dir.to_str().unwrap(),
            "--out",
            out,
        ])
        .assert()
        .success();
    assert!(s.tmp.path().join("compare.html").exists());
}

#[test]
fn seeds_draw_one_learning_curve_per_setting_with_a_band() {
    let s = Sweep::new(
        "name: bands\nfixed: {epochs: 4}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01]\nseeds: [1, 2, 3]\n",
    );
    s.run(&scripted(0));
    let dir = s.dir();
    // The scripted training loss depends on the seed, so each setting's three seeds spread.
    let plot = std::fs::read_to_string(dir.join("plots/curve-train-loss.svg")).unwrap();
    assert_eq!(plot.matches("<polyline").count(), 2, "{plot}");
    assert_eq!(plot.matches("class=\"band\"").count(), 2, "{plot}");
    // Bands are drawn under every line.
    assert!(
        plot.rfind("class=\"band\"") < plot.find("<polyline"),
        "{plot}"
    );
    assert!(plot.contains(">learning_rate=0.1<") && plot.contains(">learning_rate=0.01<"));
    assert!(!plot.contains("seed="), "{plot}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains(
            "each line is the mean over a setting's 3 seeds and the shaded band spans their min–max"
        ),
        "{md}"
    );
}

#[test]
fn a_large_sweep_with_seeds_draws_the_curves_of_its_best_settings() {
    let s = Sweep::new(
        "name: many\nfixed: {epochs: 2}\ngrid:\n  optimizer.learning_rate: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02, 0.03]\nseeds: [1, 2]\n",
    );
    s.run(&scripted(0));
    let dir = s.dir();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("Curves: the best 10 of 12 settings by their mean over seeds"),
        "{md}"
    );
    // Scripted accuracy falls with the learning rate: the two largest rates are left out.
    let plot = std::fs::read_to_string(dir.join("plots/curve-train-loss.svg")).unwrap();
    assert_eq!(plot.matches("<polyline").count(), 10, "{plot}");
    assert!(plot.contains(">learning_rate=0.001<") && !plot.contains(">learning_rate=0.03<"));
}

#[test]
fn report_markdown_snapshot() {
    let s = Sweep::new(REP);
    s.run(&scripted(0));
    let md = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    let md: String = md
        .lines()
        .map(|l| {
            if l.starts_with("| generated |") {
                "| generated | <date> |"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(md);
}

#[test]
fn error_messages_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        "name: x\nfixed:\n  epochs: 1\ngrid:\n  optimizer.learnig_rate: [0.1]\n",
        "name: x\nfixd:\n  epochs: 1\n",
        "name: x\nfixed:\n  optimizer: {kind: sgd, learning_rate: 0}\n",
        "name: x\nfixed:\n  model: {kind: transformer}\n",
        "name: x\nfixed: {epochs: 1}\nzip:\n  batch_size: [1, 2]\n  optimizer.learning_rate: [0.1]\n",
        "name: x\nfixed:\n  epochs: [1\n",
    ];
    let mut all = String::new();
    for (i, yaml) in cases.iter().enumerate() {
        let f = write(d.path(), &format!("bad{i}.yaml"), yaml);
        let out = bin()
            .args(["validate", f.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr).replace(d.path().to_str().unwrap(), "<tmp>");
        all += &err;
    }
    let results = d.path().join("nothing");
    std::fs::create_dir_all(&results).unwrap();
    let out = bin()
        .args(["report", results.to_str().unwrap()])
        .output()
        .unwrap();
    all += &String::from_utf8_lossy(&out.stderr).replace(d.path().to_str().unwrap(), "<tmp>");
    insta::assert_snapshot!(all);
}

#[test]
fn a_program_s_many_and_odd_metric_names_are_capped_and_escaped_in_report_md() {
    let s = Sweep::new(
        "name: names\nprogram:\n  command: [python3, metrics.py, \"{lr}\"]\n  metric: loss\ngrid:\n  lr: [0.1, 0.2]\n",
    );
    write(
        s.tmp.path(),
        "metrics.py",
        "import json, os, sys\nrow = {'loss': float(sys.argv[1]), 'a|b': 1.0, 'b*y*': 2.0, '<b>bold</b>': 3.0}\nrow.update({'m%02d' % i: i for i in range(30)})\nopen(os.environ['HYPERSWEEP_METRICS'], 'a').write(json.dumps(row) + '\\n')\n",
    );
    let out = s.cli("run", &["--quiet"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let md = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    let header = md.lines().find(|l| l.starts_with("| trial |")).unwrap();
    // The report's metric first, then by name, 12 in all; a name never breaks the table.
    assert!(
        header.contains("| lr | loss | \\<b\\>bold\\</b\\> | a\\|b | b\\*y\\* | m00 |"),
        "{header}"
    );
    assert!(
        header.contains("| m07 |") && !header.contains("m08"),
        "{header}"
    );
    assert!(!md.contains("<b>bold"), "{md}");
    assert!(
        md.contains("Metrics: the table and the curves show 12 of the 34 metrics the trials reported (the report's metric first, then by name); 22 more are in summary.csv."),
        "{md}"
    );
    let csv = std::fs::read_to_string(s.dir().join("summary.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("m29"), "{csv}");
}

#[test]
fn a_chart_of_40_lines_draws_the_best_10_in_distinct_colours_and_says_so() {
    // Against the learning rate, one line per setting of the other two axes: 8 × 5 = 40.
    let s = Sweep::new(
        "name: lines\nfixed: {epochs: 1}\ngrid:\n  optimizer.learning_rate: [0.01, 0.05]\n  batch_size: [8, 16, 24, 32, 40, 48, 56, 64]\n  data.train_size: [100, 200, 300, 400, 500]\n",
    );
    s.run(&scripted(0));
    let md = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(
        md.contains("Test accuracy vs optimizer.learning_rate: the best 10 of 40 lines (settings of the other axes) by their best test accuracy"),
        "{md}"
    );
    let svg =
        std::fs::read_to_string(s.dir().join("plots/vs-optimizer-learning_rate.svg")).unwrap();
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .map(|l| {
            l.split("stroke=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(lines.len(), 10, "{svg}");
    let mut colours = lines.clone();
    colours.sort_unstable();
    colours.dedup();
    assert_eq!(colours.len(), 10, "a colour repeats: {lines:?}");
    assert!(
        !svg.contains("more lines"),
        "every line drawn is in the legend"
    );
}

#[test]
fn a_large_sweep_report_lists_its_best_and_shows_which_settings_matter() {
    let s = Sweep::new(
        "name: big\nfixed: {epochs: 2}\ngrid:\n  optimizer.learning_rate: [0.001, 0.01, 0.1, 0.2, 0.3, 0.4]\n  batch_size: [16, 32, 64, 128, 256]\n  model.activation: [relu, sigmoid]\n",
    );
    s.run(&scripted(0));
    let dir = s.dir();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for line in [
        "Listed: the best 50 of 60 trials",
        "Bars: the best 30 of 60 trials",
        "Curves: the best 10 of 60 trials",
        "## Which settings matter",
        "plots/heat-optimizer-learning_rate-batch_size.svg",
        "plots/heat-batch_size-model-activation.svg",
        "plots/parallel.svg",
    ] {
        assert!(md.contains(line), "report lacks {line}:\n{md}");
    }
    // The scripted accuracy depends on the learning rate alone: it explains all the variance.
    let importance = std::fs::read_to_string(dir.join("plots/importance.svg")).unwrap();
    let at = |t: &str| importance.find(t).unwrap_or(usize::MAX);
    assert!(
        at("optimizer.learning_rate") < at("batch_size"),
        "{importance}"
    );
    assert!(
        importance.contains("100.00%") && importance.contains("0.00%"),
        "{importance}"
    );
    let heat =
        std::fs::read_to_string(dir.join("plots/heat-optimizer-learning_rate-batch_size.svg"))
            .unwrap();
    assert_eq!(
        heat.matches("stroke-width=\"3\"").count(),
        1,
        "one best cell"
    );
    // One line per trial across the three parameters and the metric; the best one thicker.
    let lines = std::fs::read_to_string(dir.join("plots/parallel.svg")).unwrap();
    assert_eq!(lines.matches("<polyline").count(), 60);
    assert_eq!(lines.matches("stroke-width=\"3\"").count(), 1);
}
