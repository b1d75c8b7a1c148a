//! The token: a coordinator with a token refuses clients and workers without it (or with a
//! wrong one), serves health probes without it, and refuses to listen beyond loopback
//! without one.

mod cluster;

use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{bin, free_port, wait_for, write_spec};

fn patchsweep(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("PATCHSWEEP_TOKEN");
    if let Some(t) = token {
        cmd.env("PATCHSWEEP_TOKEN", t);
    }
    cmd.output().expect("run patchsweep")
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_token_is_required_on_both_services() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("auth.db").display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let _coordinator = Killed(
        Command::new(bin())
            .args(["coordinator", "--db", &db, "--listen", &listen])
            .env("PATCHSWEEP_TOKEN", "s3cret-token")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "the coordinator", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let spec = write_spec(dir.path());
    let spec = spec.to_str().unwrap();

    let none = patchsweep(&["submit", spec, "--coordinator", &url], None);
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success());
    assert!(
        err.contains("missing bearer token") && err.contains("Unauthenticated"),
        "{err}"
    );

    let wrong = patchsweep(&["status", "--coordinator", &url], Some("not-it"));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(err.contains("wrong bearer token"), "{err}");

    let worker = patchsweep(
        &["worker", "--coordinator", &url, "--name", "intruder"],
        Some("not-it"),
    );
    let err = String::from_utf8_lossy(&worker.stderr);
    assert!(
        !worker.status.success(),
        "a worker with a wrong token must stop"
    );
    assert!(err.contains("wrong bearer token"), "{err}");

    let ok = patchsweep(
        &["submit", spec, "--coordinator", &url],
        Some("s3cret-token"),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let id = String::from_utf8_lossy(&ok.stdout).trim().to_string();
    let status = patchsweep(
        &["status", &id, "--coordinator", &url],
        Some("s3cret-token"),
    );
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("[queued]"));

    // Probes need no token.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let serving = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[test]
fn no_listening_beyond_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("open.db").display());
    let out = patchsweep(
        &[
            "coordinator",
            "--db",
            &db,
            "--listen",
            &format!("0.0.0.0:{}", free_port()),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
}
