//! The analysis against a real Prometheus server (Debian's `prometheus` package): a temporary
//! TSDB is backfilled with deterministic counters (`promtool tsdb create-blocks-from
//! openmetrics`), the server runs on 127.0.0.1 for the duration of the test (bounded by
//! `timeout`), and queries are evaluated at a fixed time through the real provider.
//!
//! Cases: pass, fail, empty result, NaN, a query Prometheus refuses, a down server (closed
//! port), a slow server (a loopback listener that never answers), and an SLO burn rate; then
//! HTTPS with a test CA (made with the `openssl` command), without it, and custom headers and a
//! bearer token as a server sees them. Without the binaries the tests print a loud SKIP
//! (tests/skip), unless `ZDR_REQUIRE_PROMETHEUS=1` (set by `.ci/run`) makes that a failure.

mod skip;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use zdr::analysis::provider::{
    ErrorKind, MetricsProvider, PrometheusProvider, PrometheusSettings, Sample,
};
use zdr::analysis::{Vars, Verdict, step};
use zdr::crd::{AnalysisPhase, AnalysisSpec};

/// Seconds of backfilled data, and the step between samples.
const SPAN: i64 = 30 * 60;
const STEP: i64 = 15;

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

/// (labels, requests per second) of each counter; `idle` series never increase.
const SERIES: &[(&str, &str, f64)] = &[
    ("good", "200", 10.0),
    ("good", "500", 0.005),
    ("bad", "200", 8.0),
    ("bad", "500", 2.0),
    ("idle", "200", 0.0),
    ("idle", "500", 0.0),
];

/// OpenMetrics text of every counter from `end - SPAN` to `end`.
fn openmetrics(end: i64) -> String {
    let mut s = String::from("# TYPE http_requests counter\n");
    for (rev, code, rate) in SERIES {
        let mut t = end - SPAN;
        while t <= end {
            let v = 100.0 + rate * (t - (end - SPAN)) as f64;
            let _ = writeln!(
                s,
                "http_requests_total{{code=\"{code}\",zdr_revision=\"{rev}\"}} {v} {t}"
            );
            t += STEP;
        }
    }
    s.push_str("# EOF\n");
    s
}

/// A Prometheus process (under `timeout`, so it stops by itself) and its temporary directory.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to prometheus.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zdr-{what}-{}-{}",
        std::process::id(),
        Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

fn start(prometheus: &Path, promtool: &Path, end: i64) -> Server {
    let dir = temp_dir("prom");
    let data = dir.join("data");
    let om = dir.join("input.om");
    std::fs::write(&om, openmetrics(end)).unwrap();
    run(Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data));
    spawn(prometheus, dir, &[])
}

/// Runs prometheus on an empty config in `dir` (whose `data` holds the TSDB).
fn spawn(prometheus: &Path, dir: PathBuf, extra: &[String]) -> Server {
    let data = dir.join("data");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("timeout")
        .args(["-s", "TERM", "180"])
        .arg(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--storage.tsdb.retention.time=30d")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    Server { child, dir, addr }
}

async fn wait_ready(server: &Server, prom: &PrometheusProvider) {
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        match prom.query("vector(1)", None).await {
            Ok(_) => return,
            Err(_) if Instant::now() < ready_by => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "prometheus did not come up: {e}\n{}",
                std::fs::read_to_string(server.dir.join("prometheus.log")).unwrap_or_default()
            ),
        }
    }
}

fn provider(addr: &str, timeout: Duration) -> PrometheusProvider {
    PrometheusProvider::new(&PrometheusSettings {
        address: format!("http://{addr}"),
        timeout,
        ..PrometheusSettings::default()
    })
    .unwrap()
}

fn error_rate(rev: &str) -> String {
    format!(
        "sum(rate(http_requests_total{{code=~\"5..\",zdr_revision=\"{rev}\"}}[5m])) / sum(rate(http_requests_total{{zdr_revision=\"{rev}\"}}[5m]))"
    )
}

fn spec(metrics: serde_json::Value) -> AnalysisSpec {
    serde_json::from_value(serde_json::json!({
        "prometheus": {"address": "http://unused"},
        "metrics": metrics,
    }))
    .unwrap()
}

fn vars(rev: &str) -> Vars {
    Vars {
        revision: rev.into(),
        stable_revision: "stable".into(),
        namespace: "ns".into(),
        name: "web".into(),
    }
}

/// The binaries, or None after a loud SKIP (a failure with `ZDR_REQUIRE_PROMETHEUS=1`).
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let (prometheus, promtool) = (which("prometheus"), which("promtool"));
    let found = prometheus.clone().zip(promtool.clone());
    if found.is_none() {
        let missing: Vec<&str> = [("prometheus", prometheus), ("promtool", promtool)]
            .into_iter()
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n)
            .collect();
        skip::skip(
            &skip::PROMETHEUS,
            &format!("not found on PATH: {}", missing.join(", ")),
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_against_a_real_prometheus() {
    let Some((prometheus, promtool)) = binaries() else {
        return;
    };
    let started = Instant::now();
    // Data ends 10 minutes ago, on a minute boundary; queries are evaluated there.
    let end = (Timestamp::now().as_second() - 600) / 60 * 60;
    let at = Some(Timestamp::from_second(end).unwrap());
    let server = start(&prometheus, &promtool, end);
    let prom = provider(&server.addr, Duration::from_secs(5));
    wait_ready(&server, &prom).await;
    eprintln!("prometheus ready after {:?}", started.elapsed());

    // Raw answers.
    let good = prom.query(&error_rate("good"), at).await.unwrap();
    eprintln!("good: {good:?}");
    let v = good.values();
    assert_eq!(v.len(), 1);
    assert!((v[0] - 0.005 / 10.005).abs() < 1e-6, "{v:?}");
    let bad = prom.query(&error_rate("bad"), at).await.unwrap();
    eprintln!("bad: {bad:?}");
    assert!((bad.values()[0] - 0.2).abs() < 1e-9, "{bad:?}");
    let empty = prom.query(&error_rate("none"), at).await.unwrap();
    eprintln!("empty: {empty:?}");
    assert_eq!(empty, Sample::Vector(vec![]));
    let nan = prom.query(&error_rate("idle"), at).await.unwrap();
    eprintln!("idle (0/0): {nan:?}");
    assert!(nan.values()[0].is_nan(), "{nan:?}");
    let scalar = prom.query("scalar(vector(0.5))", at).await.unwrap();
    assert_eq!(scalar, Sample::Scalar(0.5));
    let refused = prom
        .query("sum(rate(http_requests_total[5m]", at)
        .await
        .unwrap_err();
    eprintln!("bad query: {refused}");
    assert_eq!(refused.kind, ErrorKind::BadQuery, "{refused}");
    let range = prom.query("http_requests_total[1m]", at).await.unwrap_err();
    assert_eq!(range.kind, ErrorKind::BadQuery, "{range}");

    // Through the run: a templated query, judged.
    let s = spec(serde_json::json!([{
        "name": "error-rate",
        "query": error_rate("{{revision}}"),
        "successCondition": "result < 0.01",
    }]));
    let judged = |rev: &'static str| {
        let (s, prom) = (&s, &prom);
        async move {
            let out = step(
                s,
                None,
                Ok(prom as &dyn MetricsProvider),
                &vars(rev),
                Timestamp::now(),
                at,
            )
            .await;
            let m = out.status.metrics[0].measurements[0].clone();
            eprintln!(
                "{rev}: {} value={:?} message={:?}",
                m.phase.as_str(),
                m.value,
                m.message
            );
            (out.verdict, m)
        }
    };
    let (verdict, m) = judged("good").await;
    assert_eq!(
        (verdict, m.phase),
        (Verdict::Running, AnalysisPhase::Successful)
    );
    let (verdict, m) = judged("bad").await;
    assert_eq!((verdict, m.phase), (Verdict::Failed, AnalysisPhase::Failed));
    assert_eq!(m.value.as_deref(), Some("[0.2]"));
    let (verdict, m) = judged("none").await;
    assert_eq!(
        (verdict, m.phase),
        (Verdict::Inconclusive, AnalysisPhase::Inconclusive)
    );
    assert!(
        m.message.unwrap().contains("zdr_revision=\"none\""),
        "shows the resolved query"
    );
    let (verdict, m) = judged("idle").await;
    assert_eq!(
        (verdict, m.phase),
        (Verdict::Inconclusive, AnalysisPhase::Inconclusive)
    );
    assert!(m.message.unwrap().contains("NaN"));

    // SLO burn rate on the same data: 20% errors against 99.9% burns 200x.
    let slo = spec(serde_json::json!([{"name": "availability", "slo": {
        "objective": 99.9,
        "badQuery": "sum(rate(http_requests_total{code=~\"5..\",zdr_revision=\"{{revision}}\"}[{{window}}]))",
        "totalQuery": "sum(rate(http_requests_total{zdr_revision=\"{{revision}}\"}[{{window}}]))",
    }}]));
    for (rev, want) in [
        ("bad", Verdict::Failed),
        ("good", Verdict::Running),
        ("idle", Verdict::Inconclusive),
    ] {
        let out = step(
            &slo,
            None,
            Ok(&prom as &dyn MetricsProvider),
            &vars(rev),
            Timestamp::now(),
            at,
        )
        .await;
        let m = &out.status.metrics[0].measurements[0];
        eprintln!(
            "slo {rev}: {} {:?} {:?}",
            m.phase.as_str(),
            m.value,
            m.message
        );
        assert_eq!(out.verdict, want, "{rev}: {m:?}");
    }

    // A down server: connection refused, an error measurement (not a failure).
    let down = provider(
        &format!("127.0.0.1:{}", free_port()),
        Duration::from_secs(2),
    );
    let e = down.query("vector(1)", None).await.unwrap_err();
    eprintln!("down: {e}");
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    let out = step(
        &s,
        None,
        Ok(&down as &dyn MetricsProvider),
        &vars("good"),
        Timestamp::now(),
        None,
    )
    .await;
    assert_eq!(
        out.verdict,
        Verdict::Running,
        "one error is within consecutiveErrorLimit"
    );
    assert_eq!(
        out.status.metrics[0].measurements[0].phase,
        AnalysisPhase::Error
    );
    assert_eq!(
        out.wake,
        Some(Duration::from_secs(5)),
        "retried with backoff"
    );

    // A slow server: accepts, never answers; the query times out after 1 s.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = slow.accept().await {
            held.push(sock);
        }
    });
    let sleepy = provider(&slow_addr.to_string(), Duration::from_secs(1));
    let t0 = Instant::now();
    let e = sleepy.query("vector(1)", None).await.unwrap_err();
    let took = t0.elapsed();
    eprintln!("slow: {e} after {took:?}");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    holder.abort();

    drop(server);
    eprintln!("total {:?}", started.elapsed());
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command line.
fn certificates(dir: &Path) -> bool {
    let sh = format!(
        "set -e; cd {dir}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=zdr-test-ca; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext; \
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile ext",
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &sh])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// HTTPS with the CA from settings (as read from a Secret), and what happens without it; custom
/// headers and the bearer token reach the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ca_headers_and_bearer_token() {
    let Some((prometheus, _)) = binaries() else {
        return;
    };
    // Headers: a loopback server that records the request head and answers like Prometheus.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 16384];
        let mut n = 0;
        while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            n += sock.read(&mut buf[n..]).await.unwrap();
        }
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.5"]}}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(reply.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_lowercase()
    });
    let with_headers = PrometheusProvider::new(&PrometheusSettings {
        address: format!("http://{addr}"),
        timeout: Duration::from_secs(5),
        headers: vec![("X-Scope-OrgID".into(), "shop".into())],
        bearer_token: Some("s3cret\n".into()),
        ..PrometheusSettings::default()
    })
    .unwrap();
    assert_eq!(
        with_headers.query("vector(1)", None).await.unwrap(),
        Sample::Scalar(0.5)
    );
    let head = seen.await.unwrap();
    assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
    assert!(head.contains("x-scope-orgid: shop\r\n"), "{head}");

    // TLS: prometheus serving HTTPS with a certificate from a test CA.
    let dir = temp_dir("prom-tls");
    if !certificates(&dir) {
        skip::skip(
            &skip::OPENSSL,
            "the TLS part could not make its test CA: the openssl command is missing or failed",
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\n",
            dir.display()
        ),
    )
    .unwrap();
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let web = format!("--web.config.file={}", dir.join("web.yml").display());
    let server = spawn(&prometheus, dir, &[web]);
    let https = |ca: Option<Vec<u8>>, insecure: bool| {
        PrometheusProvider::new(&PrometheusSettings {
            address: format!("https://{}", server.addr),
            timeout: Duration::from_secs(5),
            ca_pem: ca,
            insecure_skip_verify: insecure,
            ..PrometheusSettings::default()
        })
        .unwrap()
    };
    let trusted = https(Some(ca), false);
    wait_ready(&server, &trusted).await;
    let ok = trusted.query("vector(1)", None).await.unwrap();
    eprintln!("https with the CA: {ok:?}");
    assert_eq!(ok.values(), vec![1.0]);
    let e = https(None, false)
        .query("vector(1)", None)
        .await
        .unwrap_err();
    eprintln!("https without the CA: {e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    assert!(https(None, true).query("vector(1)", None).await.is_ok());
    let bad_ca = PrometheusProvider::new(&PrometheusSettings {
        address: "https://127.0.0.1:1".into(),
        ca_pem: Some(b"not a certificate".to_vec()),
        ..PrometheusSettings::default()
    });
    assert!(bad_ca.is_err(), "an unreadable CA is refused up front");
}
