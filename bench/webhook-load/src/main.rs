//! Drives a webhook URL with signed requests (Standard Webhooks, a unique message id each, so
//! every request starts its own execution) at a fixed concurrency, waiting for each execution
//! (`?wait=5`). Prints requests/s, latency percentiles and errors. Loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use wf_core::model::WebhookScheme;

#[derive(Parser)]
struct Args {
    /// The webhook URL (must be on 127.0.0.1).
    #[arg(long)]
    url: String,
    /// The Standard Webhooks secret (whsec_...).
    #[arg(long)]
    secret: String,
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Prefix of message ids (unique per run).
    #[arg(long, default_value = "bench")]
    run: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.url.starts_with("http://127.0.0.1:") {
        bail!("refusing to send load anywhere but 127.0.0.1");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}?wait=5", args.url);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, next, errors) =
            (client.clone(), url.clone(), next.clone(), errors.clone());
        let (secret, run, total) = (args.secret.clone(), args.run.clone(), args.requests);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let body = serde_json::to_vec(
                    &serde_json::json!({ "orderId": format!("{run}-{i}"), "amount": 5 }),
                )
                .unwrap_or_default();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let headers = match wf_app::webhooks::signature::sign(
                    WebhookScheme::Standard,
                    &secret,
                    &body,
                    now,
                    &format!("msg_{run}_{i}"),
                ) {
                    Ok(h) => h,
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let mut req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let t0 = Instant::now();
                let ok = match req.send().await {
                    Ok(resp) if resp.status() == 200 => resp
                        .json::<serde_json::Value>()
                        .await
                        .map(|v| v["status"] == "succeeded")
                        .unwrap_or(false),
                    _ => false,
                };
                latencies.push(t0.elapsed());
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a load task panicked")?);
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "concurrency={} requests={} errors={} elapsed={:.2}s rps={:.0} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        args.concurrency,
        all.len(),
        errors.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(all.last().copied().unwrap_or_default()),
    );
    Ok(())
}
