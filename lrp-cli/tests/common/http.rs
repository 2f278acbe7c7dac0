//! A small HTTP/1.1 client over `std::net::TcpStream` for the tests of
//! `lrp serve` and of the browser (chromedriver speaks HTTP too): one
//! request per connection, `Connection: close`, the answer read to its end.

#![allow(dead_code)] // each test binary uses a part

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: the status, the headers (names lowercased) and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `http://HOST:PORT/...` split into the address and the path.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    match rest.find('/') {
        Some(k) => (rest[..k].to_string(), rest[k..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// Sends `method path` with `body` (JSON when given) to `base` (a URL;
/// its path is replaced by `path`).
pub fn request(method: &str, base: &str, path: &str, body: Option<&[u8]>) -> Answer {
    let (host, _) = split_url(base);
    let mut stream = TcpStream::connect(&host).expect("the server accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        // A server may refuse a large body before reading it all.
        let _ = stream.write_all(body);
    }
    parse(&read_answer(&mut stream))
}

/// Reads one answer: its head, then a body of the length it gives, or
/// chunks up to the last, or (neither) to the end of the connection.
/// Some servers (chromedriver) keep the connection open whatever the
/// request says, so the end of the answer cannot wait for it to close.
fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 65536];
    let mut head_end = None;
    loop {
        if head_end.is_none() {
            head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|k| k + 4);
        }
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                if bytes.len() >= end + length {
                    return bytes;
                }
            } else if head.contains("transfer-encoding: chunked") && bytes[end..].ends_with(b"0\r\n\r\n") {
                return bytes;
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
}

pub fn get(base: &str, path: &str) -> Answer {
    request("GET", base, path, None)
}

pub fn post_json(base: &str, path: &str, body: &str) -> Answer {
    request("POST", base, path, Some(body.as_bytes()))
}

/// Parses a whole HTTP/1.1 answer (a body of known length or chunked).
fn parse(bytes: &[u8]) -> Answer {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(k) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&bytes[..k]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = k + 2;
        out.extend_from_slice(&bytes[start..(start + size).min(bytes.len())]);
        bytes = &bytes[(start + size + 2).min(bytes.len())..];
    }
}

/// A running `lrp serve`, stopped (Ctrl-C) and waited for when dropped.
pub struct Served {
    pub child: std::process::Child,
    /// The URL it printed.
    pub url: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Served {
    /// Starts `lrp serve --port 0 args` and waits (at most the deadline)
    /// for the URL on its stdout.
    pub fn start(args: &[&str]) -> Self {
        Self::start_in(std::path::Path::new("."), args)
    }

    /// [`Served::start`] from the directory `dir`.
    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = crate::common::lrp()
            .current_dir(dir)
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("lrp serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            // Keep reading, so that the pipe never fills.
            lines.for_each(drop);
        });
        let stderr = Some(crate::common::drain(child.stderr.take().unwrap()));
        let mut served = Self {
            child,
            url: String::new(),
            stderr,
        };
        match rx.recv_timeout(crate::common::DEADLINE) {
            Ok(Some(url)) => served.url = url,
            other => {
                let (code, err) = served.stop();
                panic!("lrp serve {args:?} printed no URL ({other:?}); exit {code:?}: {err}");
            }
        }
        served
    }

    /// Sends SIGINT (Ctrl-C) and waits: (exit code, stderr).
    pub fn stop(&mut self) -> (Option<i32>, String) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > crate::common::DEADLINE {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
        (status.code(), err)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            self.stop();
        }
    }
}
