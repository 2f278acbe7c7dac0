//! `lrp serve`'s page in a real browser: headless Chromium driven over
//! WebDriver (chromedriver) by the small client below, which speaks the
//! W3C protocol's JSON over `common/http.rs` (docs/serve.md says why this
//! and not Selenium). Each test types, clicks and reads the DOM as a user
//! would, compares what the page shows with `lrp explain`'s JSON, fails on
//! any console error, and takes a screenshot of each view: into
//! `docs/figures/` when `LRP_SCREENSHOTS=1`, else into a scratch folder.
//!
//! Without chromedriver the tests say so and pass, unless
//! `LRP_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs Debian's
//! `chromium` and `chromium-driver`).

mod common;
#[path = "common/http.rs"]
mod http;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, lrp_run, scratch};
use http::{request, Served};
use serde_json::{json, Value};

/// How long the page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(60);

/// The Chromium flags for a sandboxless container: no GPU, no network
/// beyond the page, no first-run work.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A browser session: chromedriver, and Chromium under it.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    /// Where screenshots go.
    figures: PathBuf,
    /// The scratch folder of `figures` without `LRP_SCREENSHOTS` (removed
    /// with the browser when the test passes).
    _figures: Option<common::Scratch>,
    _profile: common::Scratch,
}

/// chromedriver on a free port, and its URL. The port is free when
/// picked, but another test's server may take it before chromedriver
/// binds it (seen in CI: chromedriver then exits, and the other server
/// answered the check for a moment): so the driver must still run and its
/// `/status` must say it is ready, else it starts again on another port.
fn start_driver(driver_path: &std::path::Path) -> (Child, String) {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}/");
        let started = Instant::now();
        while driver.try_wait().expect("chromedriver's status").is_none() {
            if driver_ready(port) {
                return (driver, base);
            }
            assert!(started.elapsed() < WAIT, "chromedriver does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("chromedriver exited on five free ports in a row");
}

/// Whether a chromedriver listens on `port` and says it is ready: any
/// failure (nothing listening yet, a connection closed while it starts)
/// is "not yet".
fn driver_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let asked = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(asked).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).contains("\"ready\":true")
}

impl Browser {
    /// Starts chromedriver and a Chromium session of `width` x `height`;
    /// `None` (having said why) when chromedriver is not installed.
    fn start(name: &str, width: u32, height: u32) -> Option<Self> {
        let Some(driver_path) = find_program(&["chromedriver"]) else {
            assert!(
                std::env::var_os("LRP_REQUIRE_BROWSER").is_none(),
                "LRP_REQUIRE_BROWSER is set, but chromedriver is not on PATH"
            );
            eprintln!("browser tests skipped: no chromedriver (apt-get install chromium chromium-driver)");
            return None;
        };
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]).expect("chromium is installed");
        let (driver, base) = start_driver(&driver_path);
        let profile = scratch(&format!("chromium-{name}"));
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium.display().to_string(), "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let scratch_figures = match std::env::var_os("LRP_SCREENSHOTS") {
            Some(_) => None,
            None => Some(scratch(&format!("figures-{name}"))),
        };
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            figures: match &scratch_figures {
                None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/figures"),
                Some(dir) => dir.to_path_buf(),
            },
            _figures: scratch_figures,
            _profile: profile,
        };
        let answer = browser.call("POST", "session", Some(capabilities));
        browser.session = answer["sessionId"].as_str().expect("a session").to_string();
        Some(browser)
    }

    /// One WebDriver command: its `value`, or a panic naming the error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let answer = request(
            method,
            &self.base,
            &format!("/{path}"),
            body.as_deref().map(str::as_bytes),
        );
        let value: Value = answer.json();
        assert!(answer.status == 200, "WebDriver {method} {path}: {}", answer.body);
        value.get("value").cloned().unwrap_or(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("session/{}/{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    fn run(&self, script: &str, args: Value) -> Value {
        self.session_call("POST", "execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// The element `css` selects.
    fn find(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("element/{id}/click"), Some(json!({})));
    }

    fn clear(&self, css: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("element/{id}/clear"), Some(json!({})));
    }

    /// Types `text` into the element (`\u{E007}` is Enter).
    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("element/{id}/value"), Some(json!({ "text": text })));
    }

    /// Opens the page's current URL afresh (by way of a blank page), as a
    /// link to the view would; returns the URL.
    fn reopen(&self) -> String {
        let link = self.run("return location.href", json!([]));
        let link = link.as_str().unwrap().to_string();
        self.open("about:blank");
        self.open(&link);
        link
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.run(script, json!([]));
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            if started.elapsed() > WAIT {
                let status = self.run("return document.getElementById('status').textContent", json!([]));
                panic!("waited {WAIT:?} for {what}; status: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn resize(&self, width: u32, height: u32) {
        self.session_call("POST", "window/rect", Some(json!({ "width": width, "height": height })));
    }

    /// Saves a screenshot of the window as `name` in the figures folder.
    fn screenshot(&self, name: &str) {
        let data = self.session_call("GET", "screenshot", None);
        let png = base64_decode(data.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
        std::fs::write(self.figures.join(name), png).unwrap();
    }

    /// Fails on any console message of level SEVERE (errors, failed loads,
    /// CSP violations) since the last call.
    fn assert_no_console_errors(&self, when: &str) {
        let logs = self.session_call("POST", "se/log", Some(json!({ "type": "browser" })));
        let severe: Vec<&Value> = logs
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .collect();
        assert!(severe.is_empty(), "{when}: console errors: {severe:?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.call("DELETE", &path, None)));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshots WebDriver sends).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, d)| n | (u32::from(*d) << (18 - 6 * k)));
        out.extend(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// `lrp explain --format json ARGS`, its first line parsed.
fn cli(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["explain", "--format", "json"];
    all.extend(args);
    let (code, stdout, stderr) = lrp_run(&all);
    assert_eq!(code, Some(0), "{stderr}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The tokens the heatmap shows: (word, exact relevance, marked unknown).
const READ_HEATMAP: &str = "return [...document.querySelectorAll('#heatmap .token')]
    .map(s => [s.textContent, Number(s.dataset.relevance), s.classList.contains('unknown')]);";

/// The heatmap shows the CLI's words, values (to 1e-12) and unknown words.
fn assert_heatmap_is(browser: &Browser, report: &Value, what: &str) {
    let shown = browser.run(READ_HEATMAP, json!([]));
    let shown = shown.as_array().unwrap();
    let tokens = report["tokens"]
        .as_array()
        .or(report["source_tokens"].as_array())
        .unwrap();
    let relevance = report["token_relevance"]
        .as_array()
        .or(report["source_relevance"].as_array())
        .unwrap();
    let unknown: Vec<u64> = report["unknown"]
        .as_array()
        .map(|u| u.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(shown.len(), tokens.len(), "{what}: tokens shown");
    for (t, cell) in shown.iter().enumerate() {
        assert_eq!(cell[0], tokens[t], "{what}: token {t}");
        let (a, b) = (cell[1].as_f64().unwrap(), relevance[t].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-12 * a.abs().max(1.0),
            "{what}: token {t}: {a} vs {b}"
        );
        assert_eq!(
            cell[2].as_bool().unwrap(),
            unknown.contains(&(t as u64)),
            "{what}: unknown mark of {t}"
        );
    }
}

/// Waits for an explanation by `method` of `text` to be shown.
fn wait_for_heatmap(browser: &Browser, tokens: usize, method: &str) {
    browser.wait_for(
        &format!("the {method} heatmap"),
        &format!(
            "return document.querySelectorAll('#heatmap .token').length === {tokens}
                && document.getElementById('status').textContent === ''
                && document.getElementById('conservation').textContent.length > 0
                && location.hash.includes('view=explain')
                && (('{method}' === 'lrp') !== location.hash.includes('method='))
                && document.querySelector('#deletion svg') !== null"
        ),
    );
}

#[test]
fn a_sentence_typed_and_entered_is_explained_as_the_cli_explains_it() {
    let Some(browser) = Browser::start("explain", 1280, 800) else {
        return;
    };
    let server = Served::start(&[]);
    browser.open(&server.url);
    browser.wait_for("the page", "return document.body.dataset.ready === 'true'");
    // The console check sees errors: a probe is caught (and drained).
    browser.run("console.error('lrp-probe')", json!([]));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.assert_no_console_errors("probe")
    }));
    assert!(caught.is_err(), "a console error fails the check");
    let text = "a gorgeous , witty film about zyxwvq .";
    browser.clear("#text");
    browser.type_into("#text", &format!("{text}\u{E007}"));
    wait_for_heatmap(&browser, 8, "lrp");
    let lrp = &cli(&[text])[0];
    assert_heatmap_is(&browser, lrp, "lrp");
    // The scores table and the conservation readout (bias factor 0: the
    // biases absorb some relevance, as intended: amber, not red).
    let rows = browser.run("return document.querySelectorAll('#scores tr').length", json!([]));
    assert_eq!(rows, json!(6));
    let readout = browser.run("return document.getElementById('conservation').className", json!([]));
    assert_eq!(readout, json!("absorbed"));
    browser.screenshot("serve-explain.png");
    browser.assert_no_console_errors("explain");

    // Another method, chosen with the keyboard.
    let method = browser.find("#method");
    browser.session_call("POST", &format!("element/{method}/value"), Some(json!({ "text": "g" })));
    browser.run(
        "document.getElementById('method').dispatchEvent(new Event('change'))",
        json!([]),
    );
    wait_for_heatmap(&browser, 8, "gi");
    assert_heatmap_is(&browser, &cli(&["--method", "gi", text])[0], "gi");
    browser.assert_no_console_errors("gi");

    // Rules that conserve: bias factor 1, eps 0; the readout turns green.
    browser.run(
        "const m = document.getElementById('method'); m.value = 'lrp'; m.dispatchEvent(new Event('change'));",
        json!([]),
    );
    wait_for_heatmap(&browser, 8, "lrp");
    browser.clear("#eps");
    browser.type_into("#eps", "0");
    browser.run(
        "const b = document.getElementById('bias-factor'); b.value = '1'; b.dispatchEvent(new Event('change'));",
        json!([]),
    );
    browser.wait_for(
        "conservation",
        "return document.getElementById('conservation').className === 'ok'",
    );
    assert_heatmap_is(
        &browser,
        &cli(&["--eps", "0", "--bias-factor", "1", text])[0],
        "conserving rules",
    );
    browser.screenshot("serve-conservation.png");

    // The link restores the view: the same explanation in a fresh load.
    let link = browser.run("return location.href", json!([]));
    let link = link.as_str().unwrap();
    assert!(link.contains("bias_factor=1") && link.contains("eps=0"), "{link}");
    browser.open("about:blank");
    browser.open(link);
    browser.wait_for(
        "the restored view",
        "return document.getElementById('conservation').className === 'ok'",
    );
    assert_heatmap_is(
        &browser,
        &cli(&["--eps", "0", "--bias-factor", "1", text])[0],
        "restored",
    );

    // Phone width: the same view, stacked.
    browser.resize(390, 844);
    let width = browser.run("return document.documentElement.scrollWidth", json!([]));
    assert!(
        width.as_u64().unwrap() <= 390,
        "no sideways scrolling at phone width: {width}"
    );
    browser.screenshot("serve-phone.png");
    browser.assert_no_console_errors("restored");
}

#[test]
fn the_compare_view_shows_methods_side_by_side_with_their_deletion_curves() {
    let Some(browser) = Browser::start("compare", 1280, 800) else {
        return;
    };
    let server = Served::start(&[]);
    let text = "the plot is a mess , but the acting is superb .";
    browser.open(&format!("{}#view=compare&text={}", server.url, text.replace(' ', "+")));
    browser.wait_for("the page", "return document.body.dataset.ready === 'true'");
    browser.click("#add-panel");
    // The first panel: LRP with its own eps and rules by site.
    browser.clear(".panel input[aria-label='eps of this panel']");
    browser.type_into(".panel input[aria-label='eps of this panel']", "0.01");
    browser.type_into(
        ".panel input[aria-label='Rules by site of this panel']",
        "head=gamma:0.5",
    );
    // The third panel: another text, with occlusion.
    browser.run(
        "const p = document.querySelectorAll('.panel')[2]; p.querySelector('textarea').value = 'a dull , lifeless film .';
         p.querySelectorAll('select')[0].value = 'occlusion';
         p.querySelectorAll('select')[0].dispatchEvent(new Event('change'));",
        json!([]),
    );
    browser.click("#run-compare");
    browser.wait_for(
        "three panels and three curves",
        "return document.querySelectorAll('.panel .heatmap .token').length === 12 + 12 + 6
            && document.querySelectorAll('#compare-deletion polyline').length === 3",
    );
    let gi = browser.run(
        "return [...document.querySelectorAll('.panel')[1].querySelectorAll('.token')].map(s => Number(s.dataset.relevance))",
        json!([]),
    );
    let expected = &cli(&["--method", "gi", text])[0]["token_relevance"];
    for (a, b) in gi.as_array().unwrap().iter().zip(expected.as_array().unwrap()) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-12);
    }
    let ruled = browser.run(
        "return [...document.querySelectorAll('.panel')[0].querySelectorAll('.token')].map(s => Number(s.dataset.relevance))",
        json!([]),
    );
    let expected = &cli(&["--eps", "0.01", "--rules", "head=gamma:0.5", text])[0]["token_relevance"];
    let plain = &cli(&[text])[0]["token_relevance"];
    assert_ne!(expected, plain, "the panel's rules change the relevance");
    for (a, b) in ruled.as_array().unwrap().iter().zip(expected.as_array().unwrap()) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-12);
    }
    assert!(
        browser
            .run("return location.hash", json!([]))
            .as_str()
            .unwrap()
            .contains("gamma"),
        "the link keeps the panel's rules"
    );
    browser.screenshot("serve-compare.png");
    browser.assert_no_console_errors("compare");
}

#[test]
fn an_encoder_decoder_shows_its_matrices_and_a_clicked_row() {
    let Some(browser) = Browser::start("seq2seq", 1280, 800) else {
        return;
    };
    let dir = fixture("seq2seq-reverse/model");
    let server = Served::start(&["--model", &format!("reverse={}", dir.display())]);
    let text = "f e c d h j";
    browser.open(&format!("{}#text={}", server.url, text.replace(' ', "+")));
    browser.wait_for(
        "the matrices",
        "return document.querySelector('#attention-matrix') !== null",
    );
    // Click the third output token: its row is chosen and shown above.
    browser.click("#relevance-matrix tr[data-row='2'] th");
    browser.wait_for(
        "row 2",
        "return document.querySelector('#relevance-matrix tr.chosen')?.dataset.row === '2'",
    );
    let steps = cli(&["--model", dir.to_str().unwrap(), "--text", text]);
    assert_heatmap_is(&browser, &steps[2], "output token 2");
    browser.screenshot("serve-seq2seq.png");
    // The link restores the chosen output token.
    let link = browser.reopen();
    assert!(link.contains("output_row=2"), "{link}");
    browser.wait_for(
        "row 2 again",
        "return document.querySelector('#relevance-matrix tr.chosen')?.dataset.row === '2'",
    );
    assert_heatmap_is(&browser, &steps[2], "output token 2, from the link");
    browser.assert_no_console_errors("seq2seq");
}

#[test]
fn vector_inputs_show_a_channel_by_time_heatmap_over_the_input() {
    let Some(browser) = Browser::start("series", 1280, 800) else {
        return;
    };
    let dir = fixture("adding/model");
    let server = Served::start(&["--model", &format!("adding={}", dir.display())]);
    browser.open(&server.url);
    browser.wait_for("the page", "return document.body.dataset.ready === 'true'");
    let rows = ["0.3 0", "0.9 1", "0.1 0", "0.5 0", "0.7 1", "0.2 0", "0.4 0", "0.8 0"];
    browser.clear("#text");
    // Shift+Enter starts a new line (U+E008 Shift, U+E007 Enter, U+E000
    // releases the modifiers); Enter alone explains.
    browser.type_into("#text", &rows.join("\u{E008}\u{E007}\u{E000}"));
    browser.type_into("#text", "\u{E007}");
    browser.wait_for("the series", "return document.querySelectorAll('#series-matrix td').length === 16 && document.querySelectorAll('#series polyline').length === 2");
    // The cells are the CLI's input_relevance for the same vectors.
    let scratch_dir = scratch("browser-series");
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.split(' ').map(|v| v.parse::<f64>().unwrap()))
        .collect();
    let npy = scratch_dir.join("x.npy");
    std::fs::write(&npy, common::npy(&[8, 2], &values)).unwrap();
    let report = &cli(&[
        "--model",
        dir.to_str().unwrap(),
        "--vectors",
        npy.to_str().unwrap(),
        "--per-dimension",
    ])[0];
    let cells = browser.run(
        "return [...document.querySelectorAll('#series-matrix tr[data-row]')].map(r => [...r.querySelectorAll('td')].map(td => Number(td.dataset.value)))",
        json!([]),
    );
    for (e, row) in cells.as_array().unwrap().iter().enumerate() {
        for (t, value) in row.as_array().unwrap().iter().enumerate() {
            let expected = report["input_relevance"][t][e].as_f64().unwrap();
            assert!(
                (value.as_f64().unwrap() - expected).abs() <= 1e-12,
                "channel {e} time {t}"
            );
        }
    }
    browser.screenshot("serve-series.png");
    browser.assert_no_console_errors("series");
}

/// Writes 10,000 labelled sentences of the SST fixtures into
/// `dir/corpus.jsonl`, as JSON Lines, and returns its path.
fn sst_corpus(dir: &std::path::Path) -> PathBuf {
    let mut lines = Vec::new();
    for file in ["sst/train.txt", "sst/dev.txt", "sst/test.txt"] {
        for tree in std::fs::read_to_string(fixture(file)).unwrap().lines() {
            let words: Vec<&str> = tree
                .split(')')
                .filter_map(|part| part.rsplit_once(' ').map(|(_, w)| w))
                .filter(|w| !w.starts_with('(') && !w.is_empty())
                .collect();
            let label: u64 = tree[1..2].parse().unwrap();
            lines.push(json!({ "text": words.join(" "), "label": label }).to_string());
        }
    }
    lines.truncate(10_000);
    assert_eq!(lines.len(), 10_000);
    let corpus = dir.join("corpus.jsonl");
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    corpus
}

#[test]
fn the_corpus_view_pages_sorts_filters_and_opens_ten_thousand_rows() {
    let Some(browser) = Browser::start("corpus", 1280, 800) else {
        return;
    };
    let dir = scratch("browser-corpus");
    let corpus = sst_corpus(&dir);
    let server = Served::start(&["--corpus", corpus.to_str().unwrap()]);
    browser.open(&format!("{}#view=corpus", server.url));
    browser.wait_for(
        "the first page",
        "return document.querySelectorAll('#corpus-table tbody tr').length === 50",
    );
    let status = browser.run("return document.getElementById('corpus-status').textContent", json!([]));
    assert!(
        status
            .as_str()
            .unwrap()
            .contains("of 10000 matching (10000 in corpus.jsonl,"),
        "the file's name, not its path on the server: {status}"
    );
    // Sort by score, highest first (two clicks), filter, open a row.
    browser.click("button[data-sort='score']");
    browser.wait_for(
        "ascending",
        "return document.querySelector('th[aria-sort]')?.getAttribute('aria-sort') === 'ascending'",
    );
    browser.click("button[data-sort='score']");
    browser.wait_for(
        "descending",
        "return document.querySelector('th[aria-sort]')?.getAttribute('aria-sort') === 'descending'",
    );
    let scores = browser.run(
        "return [...document.querySelectorAll('#corpus-table tbody tr')].map(r => r.children[4].textContent)",
        json!([]),
    );
    let scores: Vec<f64> = scores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted highest first: {scores:?}"
    );
    browser.type_into("#corpus-filter", "funny");
    browser.wait_for(
        "the filter",
        "return [...document.querySelectorAll('#corpus-table tbody tr')].every(r => r.children[1].textContent.toLowerCase().includes('funny'))
            && document.getElementById('corpus-status').textContent.includes('matching') && location.hash.includes('corpus_filter=funny')",
    );
    browser.screenshot("serve-corpus.png");
    // The export holds the filtered rows.
    let url = format!("{}api/corpus?filter=funny&format=jsonl", server.url);
    let (_, path) = http::split_url(&url);
    let exported = http::get(&server.url, &path).body;
    assert!(exported.lines().count() > 10 && exported.lines().all(|l| l.to_lowercase().contains("funny")));
    let text = browser.run(
        "return document.querySelector('#corpus-table tbody tr').children[1].textContent",
        json!([]),
    );
    let expected = &cli(&[text.as_str().unwrap()])[0];
    browser.click("#corpus-table tbody tr");
    wait_for_heatmap(&browser, expected["tokens"].as_array().unwrap().len(), "lrp");
    assert_heatmap_is(&browser, expected, "a corpus row");
    browser.assert_no_console_errors("corpus");
}

/// A server started without `--corpus`: the corpus view opens a file of
/// 10,000 rows chosen from the page, its link restores it, and a row
/// opens the explanation the CLI gives.
#[test]
fn a_corpus_file_opened_from_the_page_is_explained_and_linked() {
    let Some(browser) = Browser::start("corpus-open", 1280, 800) else {
        return;
    };
    let dir = scratch("browser-corpus-open");
    let corpus = sst_corpus(&dir);
    let server = Served::start(&[]);
    browser.open(&format!("{}#view=corpus", server.url));
    browser.wait_for(
        "the empty corpus view",
        "return !document.getElementById('view-corpus').hidden
            && document.getElementById('corpus-status').textContent.includes('open a file')",
    );
    browser.type_into("#corpus-file", corpus.to_str().unwrap());
    browser.wait_for(
        "the opened file's first page",
        "return document.querySelectorAll('#corpus-table tbody tr').length === 50",
    );
    let status = browser.run("return document.getElementById('corpus-status').textContent", json!([]));
    assert!(
        status
            .as_str()
            .unwrap()
            .contains("of 10000 matching (10000 in corpus.jsonl, explained with sst-default)"),
        "{status}"
    );
    // The link names the file's corpus, so opening it again restores it.
    let link = browser.run("return location.href", json!([]));
    assert!(link.as_str().unwrap().contains("corpus_id="), "{link}");
    browser.click("button[data-sort='score']");
    browser.wait_for("sorted", "return location.hash.includes('corpus_sort=score')");
    browser.reopen();
    browser.wait_for(
        "the linked view",
        "return document.querySelectorAll('#corpus-table tbody tr').length === 50
            && document.querySelector('th[aria-sort]')?.getAttribute('aria-sort') === 'ascending'",
    );
    browser.screenshot("serve-corpus-open.png");
    let text = browser.run(
        "return document.querySelector('#corpus-table tbody tr').children[1].textContent",
        json!([]),
    );
    let expected = &cli(&[text.as_str().unwrap()])[0];
    browser.click("#corpus-table tbody tr");
    wait_for_heatmap(&browser, expected["tokens"].as_array().unwrap().len(), "lrp");
    assert_heatmap_is(&browser, expected, "a row of a file opened from the page");
    browser.assert_no_console_errors("corpus opened from the page");
}
