//! `track-load URL KEYS_FILE [SECONDS] [CONNECTIONS]`: `POST /v1/track` against a running
//! `plunk serve` over CONNECTIONS keep-alive connections for SECONDS, with the public keys of
//! KEYS_FILE (one a line) in rotation. Unlike wrk, every request sent is waited for, so the count
//! of 200 responses is exact and can be compared with the events the server stored.
//!
//! Prints one `RESULT requests=… rps=… p50_ms=… p90_ms=… p99_ms=… max_ms=… non2xx=…
//! socket_errors=… ok200=…` line (the format of infra/bench/common.lua).

// The deployed binaries' allocator.
use plunk_bench as _;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: track-load URL KEYS_FILE [SECONDS] [CONNECTIONS]";
    let base = args.next().expect(usage);
    let keys: Vec<String> = std::fs::read_to_string(args.next().expect(usage))
        .expect("keys file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|k| format!("Bearer {}", k.trim()))
        .collect();
    let seconds: u64 = args.next().map(|s| s.parse().expect(usage)).unwrap_or(10);
    let connections: usize = args.next().map(|s| s.parse().expect(usage)).unwrap_or(64);
    let url = format!("{base}/v1/track");
    // reqwest is built without a default TLS provider in this workspace; plain http needs none,
    // but the client builder insists on one being installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..connections {
        let (url, keys) = (url.clone(), keys.clone());
        tasks.spawn(async move {
            // One client each, one connection each (requests on it are sequential).
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let mut latencies = Vec::new();
            let (mut ok, mut non2xx, mut errors) = (0u64, 0u64, 0u64);
            let mut i = 0usize;
            while Instant::now() < deadline {
                i += 1;
                let body = format!(
                    r#"{{"event":"page_view","email":"visitor-{worker}-{}@bench.example","data":{{"path":"/p/{}"}}}}"#,
                    i % 500,
                    i % 13
                );
                let t = Instant::now();
                let result = client
                    .post(&url)
                    .header("authorization", &keys[(worker + i) % keys.len()])
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(res) => {
                        let status = res.status();
                        let _ = res.bytes().await;
                        latencies.push(t.elapsed());
                        if status == reqwest::StatusCode::OK {
                            ok += 1;
                        } else {
                            non2xx += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, ok, non2xx, errors)
        });
    }
    let mut latencies = Vec::new();
    let (mut ok, mut non2xx, mut errors) = (0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (l, o, n, e) = done.expect("worker");
        latencies.extend(l);
        ok += o;
        non2xx += n;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let requests = latencies.len();
    println!(
        "RESULT requests={requests} rps={:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} non2xx={non2xx} socket_errors={errors} ok200={ok}",
        requests as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}
