//! Prometheus metrics over plain HTTP (`GET /metrics`), for the coordinator (read from the
//! database at each scrape: it holds no state of its own) and for workers (their counters).

use std::future::Future;
use std::net::SocketAddr;

use patchsweep_coordinator::service::Coordinator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `render()` at every request until the process ends.
pub async fn serve<F, Fut>(addr: SocketAddr, render: F) -> std::io::Result<()>
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<String, String>> + Send,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics on /metrics");
    loop {
        let (mut socket, _) = listener.accept().await?;
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = if path == "/metrics" || path == "/" {
                match render().await {
                    Ok(b) => ("200 OK", b),
                    Err(e) => ("503 Service Unavailable", format!("# error: {e}\n")),
                }
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        });
    }
}

/// The coordinator's metrics: tasks by state, lease expirations, retries, stale results,
/// effects stored (rate() gives effects/s) and live workers.
pub async fn coordinator_metrics(c: Coordinator) -> Result<String, String> {
    let t = c
        .store()
        .queue_totals(c.policy())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::from(
        "# HELP patchsweep_tasks Tasks by state, over every sweep.\n# TYPE patchsweep_tasks gauge\n",
    );
    for state in ["waiting", "queued", "leased", "done", "failed", "cancelled"] {
        let n = t
            .tasks_by_state
            .iter()
            .find(|(s, _)| s == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!("patchsweep_tasks{{state=\"{state}\"}} {n}\n"));
    }
    for (name, kind, help, v) in [
        (
            "patchsweep_lease_expirations_total",
            "counter",
            "Leases that expired without a heartbeat.",
            t.lease_expirations,
        ),
        (
            "patchsweep_task_retries_total",
            "counter",
            "Task attempts beyond the first.",
            t.retries,
        ),
        (
            "patchsweep_stale_results_total",
            "counter",
            "Results refused by fencing.",
            t.stale_results,
        ),
        (
            "patchsweep_effects_stored_total",
            "counter",
            "Effect rows stored; rate() gives effects/s.",
            t.effects_stored,
        ),
        (
            "patchsweep_workers",
            "gauge",
            "Workers seen within the last lease period.",
            t.workers,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    Ok(out)
}

/// Metrics are served without a token: an address beyond loopback needs `--metrics-public`
/// (`PATCHSWEEP_METRICS_PUBLIC=true`), so nobody exposes them by accident.
pub fn check_exposure(addr: Option<std::net::SocketAddr>, public: bool) -> anyhow::Result<()> {
    match addr {
        Some(a) if !a.ip().is_loopback() && !public => anyhow::bail!(
            "--metrics-listen {a} serves metrics beyond this machine without a token; add \
             --metrics-public (PATCHSWEEP_METRICS_PUBLIC=true) if that is meant, or listen on \
             127.0.0.1"
        ),
        _ => Ok(()),
    }
}
