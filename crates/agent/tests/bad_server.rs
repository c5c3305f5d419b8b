//! Bad servers: malformed JSON, wrong content types and 5xx give a clear
//! error and exit code, never a panic, and no files in the out-dir.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;

/// Serves `response` to every connection on plain HTTP; returns the port.
fn serve_forever(response: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(response.as_bytes());
        }
    });
    port
}

fn reply(status: &str, ctype: &str, body: &str) -> &'static str {
    Box::leak(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    )
}

fn run_against(response: &'static str) -> (i32, String, tempfile::TempDir) {
    let port = serve_forever(response);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let root = tmp.path().join("root.pem");
    // Any certificate will do as a trust anchor: the server is plain HTTP.
    let (ca, _, _) = support::make_localhost_tls(tmp.path());
    std::fs::copy(ca, &root).unwrap();
    let url = format!("http://127.0.0.1:{port}/dir");
    let (code, _, err) = support::agent(&[
        "--server",
        &url,
        "--server-root",
        root.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--domain",
        "x.example",
        "issue",
    ]);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        !out.join("key.pem").exists() && !out.join("current").exists(),
        "files written"
    );
    (code, err, tmp)
}

#[test]
fn malformed_json_directory() {
    let (code, err, _t) = run_against(reply("200 OK", "application/json", "{\"newNon"));
    assert_eq!(code, 21, "{err}");
    assert!(err.contains("malformed JSON"), "{err}");
}

#[test]
fn wrong_content_type() {
    let (code, err, _t) = run_against(reply("200 OK", "text/html", "<html>"));
    assert_eq!(code, 21, "{err}");
    assert!(err.contains("content type"), "{err}");
}

#[test]
fn server_error_5xx() {
    let (code, err, _t) = run_against(reply(
        "503 Service Unavailable",
        "application/problem+json",
        r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"down"}"#,
    ));
    assert_eq!(code, 21, "{err}");
    assert!(
        err.contains("503") && err.contains("serverInternal"),
        "{err}"
    );
}

#[test]
fn connection_refused_is_network_error() {
    let port = support::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, _, _) = support::make_localhost_tls(tmp.path());
    let (code, _, err) = support::agent(&[
        "--server",
        &format!("https://127.0.0.1:{port}/dir"),
        "--server-root",
        ca.to_str().unwrap(),
        "--out-dir",
        tmp.path().join("o").to_str().unwrap(),
        "--domain",
        "x.example",
        "issue",
    ]);
    assert_eq!(code, 20, "{err}");
}

#[test]
fn missing_server_is_usage_error() {
    let (code, _, err) = support::agent(&["--out-dir", "/nonexistent", "--domain", "x", "issue"]);
    assert_eq!(code, 2, "{err}");
}
