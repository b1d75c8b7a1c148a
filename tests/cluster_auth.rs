//! The token: a coordinator with a token refuses clients and workers without it (or with a
//! wrong one), serves health probes without it, and refuses to listen beyond loopback
//! without one.

mod cluster;

use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{bin, free_port, wait_for, write_spec};
// The standard gRPC health protocol (grpc.health.v1), not patchsweep's own messages.
use tonic_health::pb as grpc_health_v1;

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
        let mut health = grpc_health_v1::health_client::HealthClient::new(channel);
        health
            .check(grpc_health_v1::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        serving,
        grpc_health_v1::health_check_response::ServingStatus::Serving as i32
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

/// A CA and a certificate for localhost signed by it, made with the openssl command.
fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (Debian package openssl) makes the test certificates");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=patchsweep-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn tls_serves_trusted_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let db = format!("sqlite://{}", p("tls.db"));
    let port = free_port();
    let _coordinator = Killed(
        Command::new(bin())
            .args([
                "coordinator",
                "--db",
                &db,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--tls-cert", &p("cert.pem"), "--tls-key", &p("key.pem")])
            .env_remove("PATCHSWEEP_TOKEN")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "the coordinator", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let https = format!("https://localhost:{port}");
    let ok = patchsweep(
        &["status", "--coordinator", &https, "--tls-ca", &p("ca.pem")],
        None,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let untrusted = patchsweep(
        &[
            "status",
            "--coordinator",
            &https,
            "--tls-ca",
            &p("cert.pem"),
        ],
        None,
    );
    assert!(
        !untrusted.status.success(),
        "a CA the server is not signed by is refused"
    );
    let plain = patchsweep(
        &[
            "status",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
        ],
        None,
    );
    assert!(
        !plain.status.success(),
        "plaintext is refused by a TLS coordinator"
    );
}

#[test]
fn metrics_beyond_loopback_need_an_explicit_flag() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("m.db").display());
    for args in [
        vec!["coordinator", "--db", &url, "--metrics-listen", "0.0.0.0:0"],
        vec![
            "worker",
            "--coordinator",
            "http://127.0.0.1:1",
            "--metrics-listen",
            "0.0.0.0:0",
        ],
    ] {
        let out = patchsweep(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--metrics-listen 0.0.0.0:0 serves metrics beyond this machine")
                && stderr.contains("--metrics-public"),
            "{args:?}: {stderr}"
        );
    }
}
