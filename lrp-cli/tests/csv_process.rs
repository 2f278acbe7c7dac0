//! Time series from CSV (issue 28, item 1), as the real `lrp` process reads
//! them: the same explanation as the same values given as `.npy`, many
//! series in one file each explained on its own, the time column, and
//! every refusal in one line naming the line and the column.

mod common;

use std::path::Path;

use common::{assert_fails, fixture, lrp_run_in as lrp_in, npy, scratch};
use serde_json::Value;

/// The 6-channel regression fixture.
fn model() -> String {
    fixture("series6").to_str().unwrap().to_string()
}

/// `steps` rows of 6 channel values, the `seed`-th of a few made-up series.
fn rows(steps: usize, seed: usize) -> Vec<[f64; 6]> {
    (0..steps)
        .map(|t| std::array::from_fn(|c| (((t * 6 + c) * 7919 + seed * 104_729) % 1000) as f64 / 250.0 - 2.0))
        .collect()
}

/// The rows as a CSV line each, cells joined by commas (Rust prints the
/// shortest text that reads back as the same f64).
fn csv_rows(rows: &[[f64; 6]], prefix: impl Fn(usize) -> String) -> String {
    rows.iter()
        .enumerate()
        .map(|(t, row)| {
            let cells: Vec<String> = row.iter().map(f64::to_string).collect();
            format!("{}{}\n", prefix(t), cells.join(","))
        })
        .collect()
}

/// The rows as an npy `[T, 6]` file in `dir`.
fn npy_of(dir: &Path, name: &str, rows: &[[f64; 6]]) -> String {
    let values: Vec<f64> = rows.iter().flatten().copied().collect();
    let path = dir.join(name);
    std::fs::write(&path, npy(&[rows.len() as u64, 6], &values)).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs `lrp explain` on the series6 model with `args`; the JSON lines.
fn explain(dir: &Path, args: &[&str]) -> Vec<Value> {
    let model = model();
    let mut all = vec!["explain", "--model", &model, "--per-dimension"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = lrp_in(dir, &all);
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The keys an explanation of the same values shares with the npy run.
fn same_explanation(csv: &Value, npy: &Value) {
    for key in [
        "scores",
        "token_relevance",
        "input_relevance",
        "initial_state_relevance",
    ] {
        assert_eq!(csv[key], npy[key], "{key}");
    }
    assert!(npy["channels"].is_null(), "{npy}");
}

#[test]
fn a_csv_series_explains_as_the_same_values_in_npy() {
    let dir = scratch("csv-same");
    let values = rows(7, 0);
    let header = "\u{feff}\"temp, °C\",b,c,d,e,f\r\n";
    let text = format!("{header}{}", csv_rows(&values, |_| String::new()).replace('\n', "\r\n"));
    std::fs::write(dir.join("one.csv"), text).unwrap();
    let npy = npy_of(&dir, "one.npy", &values);
    let csv = explain(&dir, &["--vectors", "one.csv"]);
    let from_npy = explain(&dir, &["--vectors", &npy]);
    assert_eq!((csv.len(), from_npy.len()), (1, 1));
    same_explanation(&csv[0], &from_npy[0]);
    assert_eq!(
        csv[0]["channels"],
        serde_json::json!(["temp, °C", "b", "c", "d", "e", "f"])
    );
    // One series: no name, no time.
    assert!(csv[0]["name"].is_null() && csv[0]["time"].is_null(), "{}", csv[0]);
    assert_eq!(csv[0]["token_relevance"].as_array().unwrap().len(), 7);
}

#[test]
fn a_series_column_makes_one_explanation_per_series_in_file_order() {
    let dir = scratch("csv-series");
    let series = [("walk", rows(5, 1)), ("run 2", rows(3, 2)), ("7", rows(4, 3))];
    let mut text = "a,b,time,c,subject,d,e,f\n".to_string();
    for (name, values) in &series {
        // The time column third, the series column fifth: the channels are
        // the other columns, in header order.
        for (t, row) in values.iter().enumerate() {
            let quoted = if name.contains(' ') {
                format!("\"{name}\"")
            } else {
                name.to_string()
            };
            text.push_str(&format!(
                "{},{},{},{},{quoted},{},{},{}\n",
                row[0],
                row[1],
                0.5 * t as f64 + 10.0,
                row[2],
                row[3],
                row[4],
                row[5]
            ));
        }
    }
    std::fs::write(dir.join("many.csv"), text).unwrap();
    // Windows of one series each cross window boundaries.
    for window in ["1", "4096"] {
        let found = explain(
            &dir,
            &[
                "--vectors",
                "many.csv",
                "--series-column",
                "subject",
                "--time-column",
                "time",
                "--window",
                window,
            ],
        );
        assert_eq!(found.len(), 3, "{found:?}");
        for ((name, values), report) in series.iter().zip(&found) {
            let npy = npy_of(&dir, "s.npy", values);
            same_explanation(report, &explain(&dir, &["--vectors", &npy])[0]);
            assert_eq!(report["name"], *name);
            assert_eq!(report["channels"], serde_json::json!(["a", "b", "c", "d", "e", "f"]));
            let time: Vec<f64> = (0..values.len()).map(|t| 0.5 * t as f64 + 10.0).collect();
            assert_eq!(report["time"], serde_json::json!(time));
        }
    }
}

#[test]
fn each_malformed_csv_is_refused_in_one_line_naming_line_and_column() {
    let dir = scratch("csv-refused");
    let model = model();
    let good = "1,2,3,4,5,6";
    for (text, extra, phrase) in [
        (
            format!("a,b,c,d,e,f\n{good}\n1,2,,4,5,6\n"),
            &[][..],
            "line 3, column \"c\": a missing value",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n1,2,3,4,x5,6\n"),
            &[],
            "line 3, column \"e\": \"x5\" is not a number",
        ),
        (
            "a,b,c,d,e,f\n1,NaN,3,4,5,6\n".to_string(),
            &[],
            "line 2, column \"b\": \"NaN\" is not a finite number",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n1,2,3\n"),
            &[],
            "line 3: 3 cells, but the header names 6 columns",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n\n{good}\n"),
            &[],
            "line 3: a blank line between rows",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n\"1,2,3,4,5,6\n"),
            &[],
            "line 3: a quoted cell that never closes",
        ),
        (
            format!("a,b,c,d,e,a\n{good}\n"),
            &[],
            "line 1: the header names the column \"a\" twice",
        ),
        (
            "a,b,c,d,e\n1,2,3,4,5\n".to_string(),
            &[],
            "line 1: 5 channel columns (a, b, c, d, e), but the model reads vectors of 6 dimensions",
        ),
        (
            format!("t,a,b,c,d,e,f\n0,{good}\n1,{good}\n1,{good}\n"),
            &["--time-column", "t"],
            "line 4, column \"t\": time 1 does not come after the previous row's 1",
        ),
        (
            format!("t,a,b,c,d,e,f\n0,{good}\n"),
            &["--time-column", "time"],
            "line 1: --time-column \"time\" is not a column of the header (t, a, b, c, d, e, f)",
        ),
        (
            format!("s,a,b,c,d,e,f\nx,{good}\ny,{good}\nx,{good}\n"),
            &["--series-column", "s"],
            "line 4, column \"s\": the series \"x\" resumes after another series",
        ),
        (
            format!("s,a,b,c,d,e,f\nx,{good}\n,{good}\n"),
            &["--series-column", "s"],
            "line 3, column \"s\": a missing value",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n{good}\n{good}\n"),
            &["--max-tokens", "2"],
            "line 4: more than the 2 positions in one sequence allowed (raise the limit with --max-tokens)",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n1,2,3,4,5,60\n"),
            &["--max-line-size", "11"],
            "line 3: more than the 11 bytes in one line allowed",
        ),
        (
            format!("a,b,c,d,e,f\n{good}\n"),
            &["--max-vectors-size", "12"],
            "more than the 12 bytes of a vectors file allowed",
        ),
        (String::new(), &[], "line 1: no header: the file is empty"),
    ] {
        std::fs::write(dir.join("bad.csv"), &text).unwrap();
        let mut args = vec!["explain", "--model", &model, "--vectors", "bad.csv"];
        args.extend_from_slice(extra);
        assert_fails(
            &dir,
            &args,
            &format!("bad.csv, {phrase}").replace("bad.csv, more", "bad.csv: more"),
        );
    }
    // The time and series columns read CSV only.
    std::fs::write(dir.join("x.npy"), npy(&[1, 6], &[0.0; 6])).unwrap();
    assert_fails(
        &dir,
        &["explain", "--model", &model, "--vectors", "x.npy", "--time-column", "t"],
        "give --vectors FILE.csv",
    );
}

/// The text view a JSON report (with `input_relevance`) of the series6
/// model stands for, written out here from its values: the name, the
/// outputs, each channel's total, the 10 cells of largest |relevance|.
fn text_view(report: &Value, channels: &[&str]) -> String {
    let cells: Vec<Vec<f64>> = serde_json::from_value(report["input_relevance"].clone()).unwrap();
    let time: Vec<f64> = serde_json::from_value(report["time"].clone()).unwrap();
    let mut out = format!(
        "name: {}\noutputs: 0: {:.3}\nrelevance for class 0 (lrp; red: pushes it up, blue: down):\neach channel's total:\n",
        report["name"].as_str().unwrap(),
        report["scores"][0].as_f64().unwrap()
    );
    for (c, name) in channels.iter().enumerate() {
        let total: f64 = cells.iter().map(|row| row[c]).sum();
        out.push_str(&format!("  {name:<7}  {total:+.4}\n"));
    }
    let mut all: Vec<(usize, usize)> = (0..cells.len()).flat_map(|t| (0..6).map(move |c| (t, c))).collect();
    all.sort_by(|&(t, c), &(u, d)| {
        cells[u][d]
            .abs()
            .total_cmp(&cells[t][c].abs())
            .then((t, c).cmp(&(u, d)))
    });
    let top = &all[..10];
    out.push_str("the 10 cells of largest |relevance|:\n");
    let width = top
        .iter()
        .map(|&(t, _)| time[t].to_string().len())
        .max()
        .unwrap()
        .max(4);
    out.push_str(&format!("  {:<width$}  channel  relevance\n", "time"));
    for &(t, c) in top {
        out.push_str(&format!(
            "  {:<width$}  {:<7}  {:+.4}\n",
            time[t].to_string(),
            channels[c],
            cells[t][c]
        ));
    }
    out
}

#[test]
fn the_text_view_lists_each_channels_total_and_the_top_ten_cells() {
    let dir = scratch("csv-text");
    let sensors = fixture("series6/sensors.csv");
    let sensors = sensors.to_str().unwrap();
    let args = ["--vectors", sensors, "--series-column", "subject", "--time-column", "t"];
    let reports = explain(&dir, &args);
    let channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"];
    let want: Vec<String> = reports.iter().map(|r| text_view(r, &channels)).collect();
    let model = model();
    let mut text = vec!["explain", "--model", &model, "--format", "text"];
    text.extend_from_slice(&args);
    let (code, shown, stderr) = lrp_in(&dir, &text);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(shown, want.join("\n"));
}

#[test]
fn the_html_page_stacks_each_channel_over_its_relevance_band() {
    let dir = scratch("csv-html");
    let model = model();
    let sensors = fixture("series6/sensors.csv");
    let args = [
        "explain",
        "--model",
        &model,
        "--vectors",
        sensors.to_str().unwrap(),
        "--series-column",
        "subject",
        "--time-column",
        "t",
        "--format",
        "html",
    ];
    let (code, page, stderr) = lrp_in(&dir, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"),
        "{page}"
    );
    assert!(page.contains("<span>against the output</span>"), "the series legend");
    for (name, steps) in [("walk-1", 12), ("run-1", 10), ("rest-1", 8)] {
        let start = page.find(&format!("<h2>{name}</h2>")).expect(name);
        let section = &page[start..start + page[start..].find("</section>").unwrap()];
        // One band per channel, a rectangle per step, one curve each.
        for channel in ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"] {
            let band = format!("<g class=\"band\" data-channel=\"{channel}\">");
            assert_eq!(section.matches(&band).count(), 1, "{name} {channel}");
            let band = &section[section.find(&band).unwrap()..];
            let band = &band[..band.find("</g>").unwrap()];
            assert_eq!(band.matches("<rect ").count(), steps, "{name} {channel}");
            assert!(section.contains(&format!(">{channel}</text>")), "{name} {channel}");
        }
        assert_eq!(section.matches("<polyline class=\"curve\"").count(), 6, "{name}");
        assert!(!section.contains("Downsampled"), "{name}");
    }
    // A long input is averaged down, as its caption says.
    let long: Vec<[f64; 6]> = rows(4_500, 5);
    let npy = npy_of(&dir, "long.npy", &long);
    let (code, page, stderr) = lrp_in(
        &dir,
        &["explain", "--model", &model, "--vectors", &npy, "--format", "html"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        page.contains("Downsampled: 1500 points for 4500 steps, each the mean of up to 3 consecutive steps' values"),
        "{}",
        &page[page.len().saturating_sub(2000)..]
    );
    assert_eq!(page.matches("<g class=\"band\"").count(), 6);
    let band = &page[page.find("<g class=\"band\" data-channel=\"0\">").unwrap()..];
    assert_eq!(band[..band.find("</g>").unwrap()].matches("<rect ").count(), 1500);
}

#[test]
fn plot_draws_one_series_into_an_svg_file() {
    let dir = scratch("csv-plot");
    let model = model();
    let values = rows(9, 4);
    let header = "t,a,b,c,d,e,f\n";
    std::fs::write(
        dir.join("one.csv"),
        format!("{header}{}", csv_rows(&values, |t| format!("{},", t * 10))),
    )
    .unwrap();
    let (code, stdout, stderr) = lrp_in(
        &dir,
        &[
            "explain",
            "--model",
            &model,
            "--vectors",
            "one.csv",
            "--time-column",
            "t",
            "--plot",
            "one.svg",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    // The JSON is as without --plot (no input_relevance unless asked for).
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(report["input_relevance"].is_null(), "{report}");
    let svg = std::fs::read_to_string(dir.join("one.svg")).unwrap();
    assert!(
        svg.starts_with("<svg class=\"series\" xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    for channel in ["a", "b", "c", "d", "e", "f"] {
        let band = format!("<g class=\"band\" data-channel=\"{channel}\">");
        assert_eq!(svg.matches(&band).count(), 1, "{channel}");
    }
    assert_eq!(svg.matches("<rect ").count(), 6 * 9);
    assert!(
        svg.contains(">80</text>") && svg.contains("<text class=\"caption\""),
        "{svg}"
    );
    // Several series would make several figures: refused, nothing written.
    std::fs::write(dir.join("two.csv"), "s,a,b,c,d,e,f\nx,1,2,3,4,5,6\ny,1,2,3,4,5,6\n").unwrap();
    assert_fails(
        &dir,
        &[
            "explain",
            "--model",
            &model,
            "--vectors",
            "two.csv",
            "--series-column",
            "s",
            "--plot",
            "two.svg",
        ],
        "--plot draws one input",
    );
    assert!(!dir.join("two.svg").exists());
}
