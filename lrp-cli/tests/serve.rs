//! `lrp serve` as a process: the real binary on a free port of loopback,
//! its URL read from stdout, its API compared with `lrp explain`'s JSON,
//! bad requests, a bounded load, Ctrl-C.

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use common::{fixture, lrp_run};
use http::{get, post_json, Served};
use serde_json::{json, Value};

/// `a` and `b` are the same JSON, numbers within 1e-12 (relative to
/// their size when above 1).
fn assert_same_json(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                "{at}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                assert_same_json(x, y, &format!("{at}[{k}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{at}: keys");
            for (k, v) in x {
                assert_same_json(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// `lrp explain --format json` with the flags a request's keys name
/// (`model` a directory, `vectors` a file): its lines, parsed.
fn cli_json(model_dir: Option<&str>, keys: &Value, vectors: Option<&str>) -> Vec<Value> {
    let mut args: Vec<String> = vec!["explain".into(), "--format".into(), "json".into()];
    if let Some(dir) = model_dir {
        args.extend(["--model".into(), fixture(dir).display().to_string()]);
    }
    if let Some(file) = vectors {
        args.extend(["--vectors".into(), fixture(file).display().to_string()]);
    }
    for (key, value) in keys.as_object().unwrap() {
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            Value::Bool(true) => args.push(flag),
            Value::String(s) => args.extend([flag, s.clone()]),
            other => args.extend([flag, other.to_string()]),
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = lrp_run(&args);
    assert_eq!(code, Some(0), "lrp {args:?}: {stderr}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The request: the keys, the model's name, the vectors of a file.
fn request(model: Option<&str>, keys: &Value, vectors: Option<&str>) -> String {
    let mut body = keys.clone();
    if let Some(name) = model {
        body["model"] = json!(name);
    }
    if let Some(file) = vectors {
        let limits = lrp_io::Limits::default();
        let mut arrays = lrp_io::open_sequences(&fixture(file), &limits).unwrap();
        let x = arrays.next().unwrap().unwrap().vectors;
        let rows: Vec<Vec<f64>> = x.column_iter().map(|c| c.iter().copied().collect()).collect();
        body["vectors"] = json!(rows);
    }
    body.to_string()
}

/// The API answers what the CLI prints, for the built-in model under
/// every method, several rule sets, a target, f32, and `per_dimension`.
#[test]
fn the_api_answers_what_lrp_explain_prints_for_the_built_in_model() {
    let server = Served::start(&[]);
    let text = "a gorgeous , witty film about zyxwvq .";
    let cases = [
        json!({ "text": text }),
        json!({ "text": text, "method": "sa" }),
        json!({ "text": text, "method": "gi" }),
        json!({ "text": text, "method": "occlusion" }),
        json!({ "text": text, "method": "ig", "steps": 10 }),
        json!({ "text": text, "composite": "zplus" }),
        json!({ "text": text, "rule": "epsilon", "eps": 0.0, "bias_factor": 1.0 }),
        json!({ "text": text, "rules": "head=gamma:0.5,*=epsilon", "gate_rule": "prop", "prop_eps": 0.5 }),
        json!({ "text": text, "target": 0, "composite": "alpha2-beta1" }),
        json!({ "text": text, "precision": "f32" }),
        json!({ "text": "the plot is a mess .", "per_dimension": true }),
    ];
    for keys in &cases {
        let answer = post_json(&server.url, "/api/explain", &request(None, keys, None));
        assert_eq!(answer.status, 200, "{keys}: {}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        let cli = cli_json(None, keys, None);
        assert_eq!(cli.len(), 1);
        assert_same_json(&answer.json(), &cli[0], &keys.to_string());
    }
    let (code, stderr) = { server }.stop();
    assert_eq!(code, Some(0), "Ctrl-C stops the server cleanly: {stderr}");
    assert!(stderr.ends_with("lrp serve: stopped\n"), "{stderr:?}");
}

/// The golden inputs (docs: tests/fixtures/golden/README.md): text for
/// the reference SST model and the embedding model, vectors for the
/// others, each with its target, eps and bias factor; and an
/// encoder–decoder's lines, as one array.
#[test]
fn the_api_answers_what_lrp_explain_prints_for_the_golden_inputs() {
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(fixture("golden/cases.json")).unwrap()).unwrap();
    let dir_of = |model: &str| {
        let path = format!("golden/{model}");
        let name = std::path::Path::new(model)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        (name, path)
    };
    let mut models: Vec<(String, String)> = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let entry = dir_of(case["model"].as_str().unwrap());
        if !models.contains(&entry) {
            models.push(entry);
        }
    }
    models.push(("reverse".into(), "seq2seq-reverse/model".into()));
    let flags: Vec<String> = models
        .iter()
        .flat_map(|(name, dir)| ["--model".to_string(), format!("{name}={}", fixture(dir).display())])
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Served::start(&flags);
    let listed = get(&server.url, "/api/models").json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, models.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
    let mut compared = 0;
    for case in golden["cases"].as_array().unwrap() {
        let (name, dir) = dir_of(case["model"].as_str().unwrap());
        for method in ["lrp", "gi"] {
            let mut keys = json!({
                "target": case["target"], "eps": case["eps"], "bias_factor": case["bias_factor"], "method": method,
            });
            // The input vectors where a case has them (the reference
            // model has no vocabulary), else its words.
            let vectors = match case["input"].as_str() {
                Some(file) => Some(format!("golden/{file}")),
                None => {
                    let tokens = case["tokens"].as_array().unwrap();
                    let words: Vec<&str> = tokens.iter().map(|t| t.as_str().unwrap()).collect();
                    keys["text"] = json!(words.join(" "));
                    None
                }
            };
            let body = request(Some(&name), &keys, vectors.as_deref());
            let answer = post_json(&server.url, "/api/explain", &body);
            assert_eq!(answer.status, 200, "{}: {}", case["name"], answer.body);
            let cli = cli_json(Some(&dir), &keys, vectors.as_deref());
            assert_same_json(&answer.json(), &cli[0], case["name"].as_str().unwrap());
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * golden["cases"].as_array().unwrap().len());
    // An encoder–decoder: greedy, then forced, then another method.
    for keys in [
        json!({ "text": "f e c d h j j e b" }),
        json!({ "text": "b a g", "output_text": "g a b </s>" }),
        json!({ "text": "b a g", "method": "occlusion", "max_output_length": 3 }),
    ] {
        let answer = post_json(&server.url, "/api/explain", &request(Some("reverse"), &keys, None));
        assert_eq!(answer.status, 200, "{keys}: {}", answer.body);
        let cli = cli_json(Some("seq2seq-reverse/model"), &keys, None);
        assert!(!cli.is_empty());
        assert_same_json(&answer.json(), &Value::Array(cli), &keys.to_string());
    }
}

/// Every bad request gets a 4xx and `{"error": ONE LINE}` naming the
/// problem; no path is read from a request.
#[test]
fn bad_requests_get_a_4xx_with_one_line() {
    let server = Served::start(&[]);
    let big = format!(r#"{{"text": "{}"}}"#, "a ".repeat(600_000));
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "POST",
            "/api/explain",
            "{not json".into(),
            400,
            "not a valid explain request",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "colour": 1}"#.into(),
            400,
            "unknown field `colour`",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "model": "nope"}"#.into(),
            400,
            "unknown model \"nope\"",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "model": "../../tests/fixtures/golden/models/lstm-last"}"#.into(),
            400,
            "unknown model \"../../tests",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "input": "/etc/passwd"}"#.into(),
            400,
            "unknown field `input`",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"vectors": "/etc/passwd"}"#.into(),
            400,
            "invalid type: string",
        ),
        ("POST", "/api/explain", big, 413, "larger than 1048576 bytes"),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "method": "shap"}"#.into(),
            400,
            "invalid value 'shap' for method",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "composite": "zplus", "rule": "flat"}"#.into(),
            400,
            "together",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "target": 9}"#.into(),
            400,
            "target",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "target": -1}"#.into(),
            400,
            "invalid value: integer `-1`",
        ),
        ("POST", "/api/explain", r#"{"text": "a", "eps": -1}"#.into(), 400, "eps"),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "vectors": [[1]]}"#.into(),
            400,
            "give one of text and vectors",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"vectors": [[1, 2]]}"#.into(),
            400,
            "vectors[0] has 2 numbers",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "output_text": "b"}"#.into(),
            400,
            "need a seq2seq model",
        ),
        (
            "POST",
            "/api/explain",
            r#"{"text": "a", "position": 0}"#.into(),
            400,
            "position",
        ),
        ("GET", "/api/corpus", String::new(), 404, "no corpus"),
        ("GET", "/etc/passwd", String::new(), 404, "no such page"),
        ("GET", "/assets/../Cargo.toml", String::new(), 404, "no such page"),
    ];
    for (method, path, body, status, phrase) in cases {
        let body = (method == "POST").then_some(body.as_bytes());
        let answer = http::request(method, &server.url, path, body);
        let shown = &answer.body[..answer.body.len().min(300)];
        assert_eq!(answer.status, status, "{method} {path}: {shown}");
        assert_eq!(answer.header("content-type"), Some("application/json"), "{path}");
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(
            !error.contains('\n') && error.contains(phrase),
            "{path}: {error:?} should say {phrase:?}"
        );
    }
    // The server still answers.
    let answer = post_json(&server.url, "/api/explain", r#"{"text": "fine"}"#);
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// A corpus sent as a file (what the page's "Open a file" does) is
/// explained with the model named, kept under an identifier, paged like
/// `--corpus`'s; each row's prediction, score and top words are those of
/// `lrp explain`. Bad files get one-line 4xx answers, and only the last
/// few files are kept.
#[test]
fn a_corpus_opened_from_the_page_is_explained_like_the_cli() {
    let server = Served::start(&[]);
    let texts = [
        "a gorgeous , witty , seductive film .",
        "the plot is nothing but boilerplate clichés from start to finish",
        "it is not a bad film",
    ];
    let file: String = texts
        .iter()
        .enumerate()
        .map(|(k, t)| format!("{}\n", json!({"text": t, "label": k})))
        .collect();
    let opened = http::request(
        "POST",
        &server.url,
        "/api/corpus?name=reviews.jsonl",
        Some(format!("{file}\n").as_bytes()),
    );
    assert_eq!(opened.status, 200, "{}", opened.body);
    let opened = opened.json();
    assert_eq!(opened["model"], "sst-default");
    assert_eq!(opened["source"], "reviews.jsonl");
    assert_eq!(opened["total"], 3);
    let id = opened["corpus"].as_str().unwrap().to_string();
    let page = get(&server.url, &format!("/api/corpus?corpus={id}&sort=line")).json();
    assert_eq!(
        (page["total"].clone(), page["source"].clone()),
        (json!(3), json!("reviews.jsonl"))
    );
    for (k, (row, text)) in page["rows"].as_array().unwrap().iter().zip(texts).enumerate() {
        let cli = &cli_json(None, &json!({"text": text}), None)[0];
        let predicted = cli["predicted"].as_u64().unwrap() as usize;
        assert_eq!(row["line"], k + 1);
        assert_eq!(row["label"], k);
        assert_eq!(row["predicted"], predicted);
        assert_same_json(&row["score"], &cli["scores"][predicted], text);
        let tokens: Vec<&str> = cli["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let relevance: Vec<f64> = cli["token_relevance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap())
            .collect();
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
        let top: Vec<&str> = order.iter().take(3).map(|&t| tokens[t]).collect();
        assert_eq!(row["top"], json!(top), "{text}");
    }
    // Plain lines: a text each, no labels; the filter works on them.
    let plain = http::request(
        "POST",
        &server.url,
        "/api/corpus?format=lines&name=t.txt",
        Some(texts.join("\n").as_bytes()),
    );
    assert_eq!(plain.status, 200, "{}", plain.body);
    let plain_id = plain.json()["corpus"].as_str().unwrap().to_string();
    let page = get(&server.url, &format!("/api/corpus?corpus={plain_id}&filter=film")).json();
    assert_eq!(page["matched"], 2);
    assert!(page["rows"][0].get("label").is_none());

    let huge = vec![b'a'; lrp_serve::MAX_UPLOAD_BYTES + 1];
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (
            "/api/corpus".into(),
            b"{\"text\": \"fine\"}\nnot json\n".to_vec(),
            400,
            "corpus line 2: not a corpus row",
        ),
        ("/api/corpus".into(), b"\n\n".to_vec(), 400, "no rows"),
        ("/api/corpus".into(), vec![0xff, 0xfe], 400, "not UTF-8"),
        (
            "/api/corpus?format=csv".into(),
            b"a".to_vec(),
            400,
            "unknown corpus format \"csv\"",
        ),
        (
            "/api/corpus?model=nope".into(),
            b"a".to_vec(),
            400,
            "unknown model \"nope\"",
        ),
        (
            "/api/corpus?path=/etc/passwd".into(),
            b"a".to_vec(),
            400,
            "unknown field `path`",
        ),
        ("/api/corpus".into(), huge, 413, "larger than"),
    ];
    for (path, body, status, phrase) in cases {
        let answer = http::request("POST", &server.url, &path, Some(&body));
        assert_eq!(
            answer.status,
            status,
            "{path}: {}",
            &answer.body[..answer.body.len().min(300)]
        );
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(
            !error.contains('\n') && error.contains(phrase),
            "{path}: {error:?} should say {phrase:?}"
        );
    }
    // The oldest file is dropped once more than MAX_UPLOADED are open.
    for _ in 0..lrp_serve::MAX_UPLOADED - 1 {
        let answer = http::request("POST", &server.url, "/api/corpus?format=lines", Some(b"fine"));
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let gone = get(&server.url, &format!("/api/corpus?corpus={id}"));
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert!(gone.json()["error"]
        .as_str()
        .unwrap()
        .contains("keeps the last 4 files"));
    assert_eq!(get(&server.url, &format!("/api/corpus?corpus={plain_id}")).status, 200);
}

/// On loopback the server answers only to loopback names in `Host`, so a
/// page elsewhere cannot reach it through a name of its own pointed at
/// 127.0.0.1 (DNS rebinding).
#[test]
fn a_request_for_another_host_name_is_refused_on_loopback() {
    use std::io::{Read, Write};
    let server = Served::start(&[]);
    let (addr, _) = http::split_url(&server.url);
    let port = addr.rsplit_once(':').unwrap().1.to_string();
    let ask = |host: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET /api/models HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_string(),
    ] {
        assert!(ask(&host).starts_with("HTTP/1.1 200"), "{host}");
    }
    let refused = ask(&format!("evil.example:{port}"));
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let body = refused.split("\r\n\r\n").nth(1).unwrap();
    let error: Value = serde_json::from_str(body).unwrap();
    let error = error["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("answers only to 127.0.0.1:{port}")) && error.contains("\"evil.example:"),
        "{error}"
    );
}

/// The page and its assets come with a content security policy that
/// allows no inline script and nothing from elsewhere.
#[test]
fn every_answer_carries_the_content_security_policy() {
    let server = Served::start(&[]);
    for path in ["/", "/assets/app.js", "/api/models", "/nope"] {
        let answer = get(&server.url, path);
        let csp = answer.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{path}: {csp:?}"
        );
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
    let page = get(&server.url, "/").body;
    assert!(
        page.contains(r#"<script type="module" src="/assets/app.js">"#),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script");
}

/// Listening beyond loopback is said on stderr.
#[test]
fn a_host_beyond_loopback_is_warned_about() {
    let mut server = Served::start(&["--host", "0.0.0.0"]);
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
    let (code, stderr) = server.stop();
    assert_eq!(code, Some(0));
    assert!(
        stderr.starts_with("warning: lrp serve listens on 0.0.0.0:"),
        "{stderr:?}"
    );
}

/// 2,000 requests from 16 concurrent clients: every answer is the CLI's
/// line for its input. Prints the latencies (never asserts on time).
#[test]
fn a_bounded_load_gets_every_answer_right() {
    const REQUESTS: usize = 2000;
    const CLIENTS: usize = 16;
    let server = Served::start(&[]);
    let inputs: Vec<(Value, String)> = [
        json!({ "text": "a gorgeous , witty film ." }),
        json!({ "text": "the plot is a mess .", "method": "gi" }),
        json!({ "text": "neither funny nor suspenseful .", "target": 1 }),
        json!({ "text": "it 's fine", "composite": "zplus" }),
    ]
    .into_iter()
    .map(|keys| {
        let line = serde_json::to_string(&cli_json(None, &keys, None)[0]).unwrap();
        (keys, line)
    })
    .collect();
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, inputs) = (&server.url, &inputs);
                scope.spawn(move || {
                    let mut times = Vec::new();
                    for k in (c..REQUESTS).step_by(CLIENTS) {
                        let (keys, expected) = &inputs[k % inputs.len()];
                        let sent = Instant::now();
                        let answer = post_json(url, "/api/explain", &keys.to_string());
                        times.push(sent.elapsed());
                        assert_eq!(answer.status, 200, "request {k}: {}", answer.body);
                        // Re-serialised, so that the same numbers print the same.
                        let got = serde_json::to_string(&answer.json()).unwrap();
                        assert_eq!(&got, expected, "request {k}");
                    }
                    times
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(latencies.len(), REQUESTS);
    let mut sorted = latencies;
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "lrp serve: {REQUESTS} requests from {CLIENTS} clients in {:.2?}: p50 {:.2?}, p99 {:.2?}",
        started.elapsed(),
        at(0.50),
        at(0.99)
    );
}
