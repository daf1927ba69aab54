//! Deployment: the files under deploy/ and the Dockerfile say what pounce does
//! in Docker, Kubernetes, ECS and systemd. These tests hold them to it with the
//! real binary on real sockets: each file parses, its timing budget covers
//! shutdown_delay + shutdown_timeout, every variable it sets is one pounce
//! reads, its command starts pounce, its health check passes against it and
//! fails (exit 1) once it drains, and the start-up errors a container or unit
//! can hit (memlock, seccomp) are the clear ones the docs promise.
//!
//! Not verifiable here (no Docker engine, no systemd as PID 1, no cluster):
//! `docker build` itself, the unit's sandboxing at run time, and the
//! orchestrators' own behaviour. See deploy/README-deploying.md.

mod common;

use common::{BIN, Pounce, procs};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

// ---------------------------------------------------------------- helpers

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn json(rel: &str) -> Json {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid JSON: {e}"))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// What a finished child process said.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `cmd` to completion, killing it (by pid) if it outlives `limit`.
fn run(cmd: Command, limit: Duration) -> Ran {
    let what = format!("{cmd:?}");
    run_limited(cmd, limit).unwrap_or_else(|| panic!("{what} still running after {limit:?}"))
}

/// Like [`run`]; None (after killing it) if `cmd` outlives `limit`.
fn run_limited(mut cmd: Command, limit: Duration) -> Option<Ran> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    Some(Ran {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        took,
    })
}

/// `pounce healthcheck <args>` with exactly `env` (on top of a clean one).
fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut all = vec!["healthcheck"];
    all.extend_from_slice(args);
    let mut cmd = common::command(&all);
    cmd.env_remove("POUNCE_HEALTHCHECK_TIMEOUT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, Duration::from_secs(20))
}

/// The one stderr line of a healthcheck run.
fn one_line(r: &Ran) -> &str {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got {:?}", r.stderr);
    lines[0]
}

/// A port nothing listens on (bound by the OS, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn rlimit_memlock() -> (u64, u64) {
    // SAFETY: getrlimit on a stack struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r), 0);
        (r.rlim_cur, r.rlim_max)
    }
}

/// "30", "30s", "500ms", "1min", "1m30s", "2h" → seconds.
fn seconds(s: &str) -> f64 {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return v;
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut unit = String::new();
    let flush = |num: &mut String, unit: &mut String, total: &mut f64| {
        if num.is_empty() {
            return;
        }
        let v: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {s:?}"));
        *total += v * match unit.as_str() {
            "ms" => 0.001,
            "" | "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            u => panic!("unknown unit {u:?} in {s:?}"),
        };
        num.clear();
        unit.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            if !unit.is_empty() {
                flush(&mut num, &mut unit, &mut total);
            }
            num.push(c);
        } else if !c.is_whitespace() {
            unit.push(c);
        }
    }
    flush(&mut num, &mut unit, &mut total);
    total
}

/// The drain budget a deployment file configures, read the way pounce reads
/// it: POUNCE_SHUTDOWN_TIMEOUT, else SHUTDOWN_TIMEOUT, else 10; delay 0.
struct Budget {
    delay: f64,
    timeout: f64,
}

fn budget(env: &BTreeMap<String, String>) -> Budget {
    let num = |k: &str| env.get(k).map(|v| v.parse::<f64>().unwrap_or_else(|_| panic!("{k}={v:?}")));
    Budget {
        delay: num("POUNCE_SHUTDOWN_DELAY").unwrap_or(0.0),
        timeout: num("POUNCE_SHUTDOWN_TIMEOUT").or_else(|| num("SHUTDOWN_TIMEOUT")).unwrap_or(10.0),
    }
}

/// Every variable a deployment file sets must be one pounce reads: a typo
/// would be ignored silently and the deploy would run on defaults. Each is
/// set to garbage and pounce must refuse it (exit 2, naming the variable);
/// POUNCE_PORT is checked by listening where it says instead.
fn assert_pounce_reads(file: &str, env: &BTreeMap<String, String>) {
    for name in env.keys() {
        match name.as_str() {
            "POUNCE_PORT" => {
                let port = closed_port().to_string();
                let mut cmd = common::command(&["demo", "--host", "127.0.0.1", "--workers", "1"]);
                cmd.env("POUNCE_PORT", &port);
                let mut p = Pounce::spawn(cmd);
                assert_eq!(p.addr.port().to_string(), port, "{file}: POUNCE_PORT ignored");
                p.sigterm();
                assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0));
            }
            "POUNCE_HEALTHCHECK_TIMEOUT" => {
                let r = healthcheck(&["--port", "1"], &[(name, "not-a-value")]);
                assert_eq!(r.code, 2, "{file}: {name} is not read by `pounce healthcheck`: {}", r.stderr);
            }
            _ => {
                assert!(
                    name.starts_with("POUNCE_") || name == "SHUTDOWN_TIMEOUT",
                    "{file}: {name} is not a pounce setting"
                );
                let mut cmd = common::command(&["demo", "--port", "0", "--workers", "1"]);
                // Any string is a path: a directory is what a pid file cannot be.
                let bad = if name == "POUNCE_PID_FILE" { "/tmp/" } else { "not-a-value" };
                cmd.env(name, bad);
                let r = run_limited(cmd, Duration::from_secs(5)).unwrap_or_else(|| {
                    panic!("{file}: {name} is not read by pounce (it started with {name}=not-a-value)")
                });
                assert_eq!(r.code, 2, "{file}: {name} is not read by pounce: {}", r.stderr);
                assert!(r.stderr.contains(&format!("(from {name})")), "{file}: {name}: {}", r.stderr);
            }
        }
    }
}

/// A deployment, as far as pounce can tell: its environment, the arguments
/// after `pounce`, and its health check command (starting with `pounce`).
struct Deployment {
    file: &'static str,
    env: BTreeMap<String, String>,
    args: Vec<String>,
    health_cmd: Vec<String>,
}

impl Deployment {
    /// Whether the deployment turns the metrics listener on.
    fn metrics(&self) -> bool {
        self.env.contains_key("POUNCE_METRICS_ADDR")
            || self.args.iter().any(|a| a.starts_with("--metrics-addr"))
    }

    /// Starts pounce as the deployment does, except on 127.0.0.1 and ports
    /// the OS picks (flags beat the environment), with 2 workers.
    fn start(&self) -> Pounce {
        const OURS: [&str; 4] = ["--host", "--port", "--workers", "--metrics-addr"];
        let mut args: Vec<String> = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if OURS.contains(&a.as_str()) {
                it.next();
            } else if !OURS.iter().any(|o| a.starts_with(&format!("{o}="))) {
                args.push(a.clone());
            }
        }
        args.extend(["--host", "127.0.0.1", "--port", "0", "--workers", "2"].map(String::from));
        if self.metrics() {
            args.extend(["--metrics-addr", "127.0.0.1:0"].map(String::from));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = common::command(&refs);
        cmd.envs(&self.env);
        Pounce::spawn(cmd)
    }

    /// Runs the deployment's health check against `addr`, with the
    /// deployment's environment (POUNCE_HOST stays as written: 0.0.0.0 must
    /// mean loopback to the check) and only the port swapped.
    fn health(&self, addr: SocketAddr) -> Ran {
        assert_eq!(self.health_cmd[0], "pounce", "{}: health check must run pounce", self.file);
        let mut cmd = Command::new(BIN);
        cmd.args(&self.health_cmd[1..]);
        cmd.env_clear();
        cmd.envs(&self.env);
        cmd.env("POUNCE_PORT", addr.port().to_string());
        run(cmd, Duration::from_secs(20))
    }

    fn health_path(&self) -> String {
        self.env.get("POUNCE_HEALTH_CHECK_PATH").cloned().unwrap_or_else(|| "/health".into())
    }

    /// The whole life of one pod/task/container: starts, is healthy, serves;
    /// on SIGTERM fails its health check during shutdown_delay, then drains
    /// and exits 0.
    fn exercise(&self) {
        let file = self.file;
        let delay = budget(&self.env).delay;
        let mut p = self.start();
        let r = self.health(p.addr);
        assert_eq!(r.code, 0, "{file}: health check failed on a serving pounce: {}", r.stderr);
        assert!(one_line(&r).starts_with("healthy: "), "{file}: {}", r.stderr);
        let resp = common::get(p.addr, &self.health_path());
        assert_eq!(resp.status, 200, "{file}: {}", resp.head);
        assert_eq!(common::get(p.addr, "/").status, 200);
        let scrape = |p: &Pounce| p.metrics_addr.map(|m| common::get(m, "/metrics"));
        assert_eq!(p.metrics_addr.is_some(), self.metrics(), "{file}: metrics listener");
        if let Some(r) = scrape(&p) {
            assert!(r.status == 200 && r.text().contains("\npounce_draining 0\n"), "{file}: {}", r.head);
        }

        p.sigterm();
        if delay > 0.0 {
            let line = format!("Waiting {delay:.1}s (shutdown_delay)");
            p.wait_log(&line, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{file}: no {line:?} in\n{}", p.log_text()));
            let r = self.health(p.addr);
            assert_eq!(r.code, 1, "{file}: health check passed on a draining pounce: {}", r.stderr);
            assert!(one_line(&r).starts_with("unhealthy: ") && r.stderr.contains(" 503 "), "{}", r.stderr);
            // Lame duck: still serving the app normally, and the metrics.
            assert_eq!(common::get(p.addr, "/").status, 200);
            if let Some(r) = scrape(&p) {
                assert!(r.status == 200 && r.text().contains("pounce_requests_total{"), "{file}: {}", r.head);
            }
        }
        let code = p.wait_exit(Duration::from_secs_f64(delay + 15.0));
        assert_eq!(code, Some(0), "{file}: log:\n{}", p.log_text());
    }
}

// ------------------------------------------------------- pounce healthcheck

#[test]
fn healthcheck_exits_0_against_a_serving_pounce() {
    let p = Pounce::start(&["demo", "--health-check-path", "/health"]);
    let port = p.addr.port().to_string();
    let r = healthcheck(&["--port", &port, "--path", "/health"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = format!("healthy: http://{}/health: HTTP/1.1 200 OK", p.addr);
    assert_eq!(one_line(&r), want);

    // As Docker's HEALTHCHECK and ECS run it: no arguments, the server's own
    // environment, where 0.0.0.0 means this host.
    let r = healthcheck(
        &[],
        &[("POUNCE_HOST", "0.0.0.0"), ("POUNCE_PORT", &port), ("POUNCE_HEALTH_CHECK_PATH", "/health")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn healthcheck_exits_1_while_pounce_drains() {
    let mut p = Pounce::start(&["demo", "--health-check-path", "/health", "--shutdown-delay", "5"]);
    let port = p.addr.port().to_string();
    assert_eq!(healthcheck(&["--port", &port], &[]).code, 0);
    let t0 = Instant::now();
    p.sigterm();
    p.wait_log("Waiting 5.0s (shutdown_delay)", Duration::from_secs(5)).expect("lame duck");
    let r = healthcheck(&["--port", &port], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let want = format!("unhealthy: http://{}/health: HTTP/1.1 503 Service Unavailable", p.addr);
    assert_eq!(one_line(&r), want);
    assert!(t0.elapsed() < Duration::from_secs(5), "the 503 must come during the delay");
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(0), "{}", p.log_text());

    // Gone: nothing listens any more.
    let r = healthcheck(&["--port", &port], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn healthcheck_exits_1_on_a_closed_port() {
    let port = closed_port();
    let r = healthcheck(&["--port", &port.to_string()], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = one_line(&r);
    assert!(
        line.starts_with(&format!("unhealthy: http://127.0.0.1:{port}/health: cannot connect")),
        "{line}"
    );
}

#[test]
fn healthcheck_exits_1_within_its_timeout_on_a_hung_server() {
    // Accepts (the kernel completes the handshake) and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port().to_string();
    let r = healthcheck(&["--port", &port, "--timeout", "1"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(one_line(&r).ends_with("no response within 1.0s"), "{}", r.stderr);
    assert!(r.took >= Duration::from_millis(900) && r.took < Duration::from_secs(5), "took {:?}", r.took);

    // The environment variable the images set does the same.
    let r = healthcheck(&["--port", &port], &[("POUNCE_HEALTHCHECK_TIMEOUT", "0.5")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.took < Duration::from_secs(4), "took {:?}", r.took);
    drop(hung);
}

#[test]
fn healthcheck_rejects_bad_arguments_with_exit_2() {
    for args in [&["--port", "eighty"][..], &["--timeout", "0"], &["--path", "health"]] {
        let r = healthcheck(args, &[]);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(one_line(&r).starts_with("error: "), "{args:?}: {}", r.stderr);
    }
}

// ------------------------------------------------------------ deploy files

#[test]
fn every_deploy_file_parses() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(root().join("deploy")).unwrap() {
        let path = entry.unwrap().path();
        let rel = format!("deploy/{}", path.file_name().unwrap().to_string_lossy());
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                let docs = yaml(&rel);
                assert!(!docs.is_empty(), "{rel} is empty");
                for d in &docs {
                    assert!(
                        d["kind"].as_str().is_some() && d["apiVersion"].as_str().is_some(),
                        "{rel}: {d:?}"
                    );
                }
            }
            Some("json") => {
                json(&rel);
            }
            _ => continue,
        }
        seen.push(rel);
    }
    for must in ["deploy/kubernetes.yaml", "deploy/ecs-task.json", "deploy/seccomp-io-uring.json"] {
        assert!(seen.iter().any(|s| s == must), "{must} missing; found {seen:?}");
    }

    // The guide's own YAML and JSON snippets parse too.
    let guide = read("deploy/README-deploying.md");
    let mut blocks = 0;
    let mut lang: Option<String> = None;
    let mut body = String::new();
    for line in guide.lines() {
        if let Some(fence) = line.trim_start().strip_prefix("```") {
            match lang.take() {
                None => lang = Some(fence.trim().to_string()),
                Some(l) => {
                    if l == "yaml" {
                        YamlLoader::load_from_str(&body)
                            .unwrap_or_else(|e| panic!("guide yaml: {e}\n{body}"));
                        blocks += 1;
                    } else if l == "json" {
                        serde_json::from_str::<Json>(&body)
                            .unwrap_or_else(|e| panic!("guide json: {e}\n{body}"));
                        blocks += 1;
                    }
                    body.clear();
                }
            }
        } else if lang.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    assert!(lang.is_none(), "unclosed code fence in the guide");
    assert!(blocks >= 3, "the guide should show its YAML/JSON examples ({blocks} found)");
}

// ---------------------------------------------------------------- Kubernetes

fn find_doc<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"))
}

fn yaml_num(y: &Yaml) -> Option<f64> {
    y.as_i64().map(|v| v as f64).or_else(|| y.as_f64())
}

fn k8s() -> (Vec<Yaml>, Deployment) {
    k8s_file("deploy/kubernetes.yaml")
}

fn k8s_file(file: &'static str) -> (Vec<Yaml>, Deployment) {
    let docs = yaml(file);
    let dep = find_doc(&docs, "Deployment");
    let containers = dep["spec"]["template"]["spec"]["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let mut env = BTreeMap::new();
    for e in c["env"].as_vec().expect("env") {
        let name = e["name"].as_str().unwrap().to_string();
        let value = e["value"].as_str().unwrap_or_else(|| panic!("{name}: quote env values"));
        assert!(env.insert(name.clone(), value.to_string()).is_none(), "{name} set twice");
    }
    // The image's ENTRYPOINT is pounce; `command` would replace it.
    assert!(c["command"].is_badvalue(), "use args, keep the image's ENTRYPOINT");
    let args = c["args"].as_vec().expect("args").iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let deployment = Deployment {
        file,
        env,
        args,
        // kubelet's httpGet probe, done by pounce's own client.
        health_cmd: vec!["pounce".into(), "healthcheck".into()],
    };
    (docs, deployment)
}

#[test]
fn kubernetes_grace_period_covers_delay_and_timeout() {
    let (docs, d) = k8s();
    k8s_budget_probes_and_service(&docs, &d);
}

/// The Deployment's drain budget, rollout, probes, seccomp profile and
/// Service (deploy/kubernetes.yaml and deploy/kubernetes-tls.yaml alike).
fn k8s_budget_probes_and_service(docs: &[Yaml], d: &Deployment) {
    let dep = find_doc(docs, "Deployment");
    let spec = &dep["spec"];
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];

    let b = budget(&d.env);
    // A preStop sleep (exec `sleep N` or the native sleep action) comes first.
    let pre_stop = &c["lifecycle"]["preStop"];
    let pre_stop_secs = if let Some(s) = yaml_num(&pre_stop["sleep"]["seconds"]) {
        s
    } else if let Some(cmd) = pre_stop["exec"]["command"].as_vec() {
        let text: Vec<&str> = cmd.iter().filter_map(Yaml::as_str).collect();
        let text = text.join(" ");
        let n = text.split("sleep").nth(1).map(|s| s.trim().trim_matches('"')).unwrap_or("0");
        n.split_whitespace().next().unwrap().parse().unwrap()
    } else {
        0.0
    };
    let grace = yaml_num(&pod["terminationGracePeriodSeconds"]).expect("terminationGracePeriodSeconds");
    let needed = pre_stop_secs + b.delay + b.timeout;
    assert!(
        grace >= needed + 5.0,
        "terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop_secs} + shutdown_delay {} + \
         shutdown_timeout {} with a margin of at least 5 s",
        b.delay,
        b.timeout
    );
    assert!(b.delay > 0.0 || pre_stop_secs > 0.0, "no lame-duck time for load balancers");

    // Rolling update that never drops below the desired count.
    assert_eq!(spec["strategy"]["type"].as_str(), Some("RollingUpdate"));
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(), Some(0));
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"].as_i64(), Some(1));
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in spec["selector"]["matchLabels"].as_hash().expect("selector") {
        assert_eq!(&labels[k.as_str().unwrap()], v, "selector does not match the pod labels");
    }

    // Probes hit pounce's health endpoint on pounce's port.
    let port: i64 = d.env["POUNCE_PORT"].parse().unwrap();
    let ports = c["ports"].as_vec().expect("ports");
    let resolve = |p: &Yaml| -> i64 {
        p.as_i64().unwrap_or_else(|| {
            let name = p.as_str().unwrap();
            ports.iter().find(|q| q["name"].as_str() == Some(name)).expect("named port")["containerPort"]
                .as_i64()
                .unwrap()
        })
    };
    assert!(ports.iter().any(|p| p["containerPort"].as_i64() == Some(port)));
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(d.health_path().as_str()), "{probe} path");
        assert_eq!(resolve(&get["port"]), port, "{probe} port");
    }
    // The readiness probe notices the 503 before the drain starts.
    let r = &c["readinessProbe"];
    let noticed =
        yaml_num(&r["periodSeconds"]).unwrap_or(10.0) * yaml_num(&r["failureThreshold"]).unwrap_or(3.0);
    assert!(noticed <= b.delay + pre_stop_secs, "readiness needs {noticed}s to fail; lame duck is shorter");
    // Slow requests end (503) inside the drain rather than being force-closed.
    if let Some(rt) = d.env.get("POUNCE_REQUEST_TIMEOUT") {
        assert!(rt.parse::<f64>().unwrap() < b.timeout, "request_timeout should be below shutdown_timeout");
    }

    // seccomp: io_uring allowed by the shipped profile (or explicitly Unconfined).
    let sc = &pod["securityContext"]["seccompProfile"];
    let sc = if sc.is_badvalue() { &c["securityContext"]["seccompProfile"] } else { sc };
    match sc["type"].as_str() {
        Some("Localhost") => {
            let p = sc["localhostProfile"].as_str().unwrap();
            assert!(p.ends_with("seccomp-io-uring.json"), "{p}");
        }
        Some("Unconfined") => {}
        other => panic!("seccompProfile {other:?} blocks io_uring on Docker 25+/containerd 2"),
    }

    // The Service reaches the pods' port.
    let svc = find_doc(docs, "Service");
    for (k, v) in svc["spec"]["selector"].as_hash().expect("service selector") {
        assert_eq!(&labels[k.as_str().unwrap()], v, "Service selector does not match the pods");
    }
    for p in svc["spec"]["ports"].as_vec().unwrap() {
        assert_eq!(resolve(&p["targetPort"]), port);
    }
}

/// The port a deployment's POUNCE_METRICS_ADDR names; it must listen on
/// every interface, or nothing outside the container could scrape it.
fn metrics_port(d: &Deployment) -> i64 {
    let addr =
        d.env.get("POUNCE_METRICS_ADDR").unwrap_or_else(|| panic!("{}: no POUNCE_METRICS_ADDR", d.file));
    let (host, port) = addr.rsplit_once(':').unwrap();
    assert!(["0.0.0.0", "[::]", ""].contains(&host), "{}: metrics on {host} only", d.file);
    port.parse().unwrap()
}

#[test]
fn kubernetes_metrics_port_is_declared_and_annotated_for_scraping() {
    let (docs, d) = k8s();
    let port = metrics_port(&d);
    let template = &find_doc(&docs, "Deployment")["spec"]["template"];
    let c = &template["spec"]["containers"][0];
    let declared = c["ports"].as_vec().unwrap().iter().find(|p| p["name"].as_str() == Some("metrics"));
    assert_eq!(declared.expect("a containerPort named metrics")["containerPort"].as_i64(), Some(port));
    let notes = &template["metadata"]["annotations"];
    assert_eq!(notes["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(notes["prometheus.io/port"].as_str(), Some(port.to_string().as_str()));
    assert_eq!(notes["prometheus.io/path"].as_str(), Some("/metrics"));
}

#[test]
fn ecs_metrics_port_is_mapped_and_labelled_for_scraping() {
    let (task, d) = ecs();
    let port = metrics_port(&d) as u64;
    let c = &task["containerDefinitions"][0];
    let mapped = c["portMappings"].as_array().unwrap().iter().find(|m| m["name"] == "metrics");
    assert_eq!(mapped.expect("a port mapping named metrics")["containerPort"].as_u64(), Some(port));
    // The CloudWatch agent's ECS service discovery reads these labels.
    assert_eq!(c["dockerLabels"]["ECS_PROMETHEUS_EXPORTER_PORT"], port.to_string());
    assert_eq!(c["dockerLabels"]["ECS_PROMETHEUS_METRICS_PATH"], "/metrics");
}

#[test]
fn kubernetes_env_is_what_pounce_reads() {
    let (_, d) = k8s();
    assert_pounce_reads(d.file, &d.env);
}

#[test]
fn kubernetes_pod_starts_probes_and_drains() {
    let (_, d) = k8s();
    d.exercise();
}

// ----------------------------------------------------------------------- ECS

fn ecs() -> (Json, Deployment) {
    let task = json("deploy/ecs-task.json");
    let c = task["containerDefinitions"][0].clone();
    let mut env = BTreeMap::new();
    for e in c["environment"].as_array().expect("environment") {
        let (k, v) = (e["name"].as_str().unwrap(), e["value"].as_str().expect("string values"));
        assert!(env.insert(k.to_string(), v.to_string()).is_none(), "{k} set twice");
    }
    let args = c["command"].as_array().expect("command").iter().map(|a| a.as_str().unwrap().into()).collect();
    let check = c["healthCheck"]["command"].as_array().expect("healthCheck.command");
    assert_eq!(check[0], "CMD", "exec form (CMD): the image has no shell for CMD-SHELL");
    let health_cmd = check[1..].iter().map(|a| a.as_str().unwrap().to_string()).collect();
    (task, Deployment { file: "deploy/ecs-task.json", env, args, health_cmd })
}

#[test]
fn ecs_stop_timeout_covers_delay_and_timeout() {
    let (task, d) = ecs();
    let c = &task["containerDefinitions"][0];
    let b = budget(&d.env);
    let stop = c["stopTimeout"].as_f64().expect("stopTimeout");
    assert!(
        stop >= b.delay + b.timeout + 5.0,
        "stopTimeout {stop} must exceed shutdown_delay {} + shutdown_timeout {} with a margin",
        b.delay,
        b.timeout
    );
    assert!(stop <= 120.0, "ECS caps stopTimeout at 120 s");
    assert_eq!(c["essential"], true);

    let hc = &c["healthCheck"];
    assert!(!hc.to_string().contains("curl"), "no curl in the image");
    assert_eq!(d.health_cmd, ["pounce", "healthcheck"]);
    let own = d.env.get("POUNCE_HEALTHCHECK_TIMEOUT").map_or(3.0, |v| v.parse().unwrap());
    assert!(hc["timeout"].as_f64().unwrap() > own, "ECS would kill the check before it reports");

    let memlock = c["ulimits"].as_array().unwrap().iter().find(|u| u["name"] == "memlock").expect("memlock");
    assert_eq!((memlock["softLimit"].as_i64(), memlock["hardLimit"].as_i64()), (Some(-1), Some(-1)));
    let port: u64 = d.env["POUNCE_PORT"].parse().unwrap();
    assert!(c["portMappings"].as_array().unwrap().iter().any(|m| m["containerPort"].as_u64() == Some(port)));
    // Fargate blocks io_uring; the EC2 launch type with the seccomp profile works.
    assert_eq!(task["requiresCompatibilities"], serde_json::json!(["EC2"]));
}

#[test]
fn ecs_env_is_what_pounce_reads() {
    let (_, d) = ecs();
    assert_pounce_reads(d.file, &d.env);
}

#[test]
fn ecs_task_starts_checks_health_and_drains() {
    let (_, d) = ecs();
    d.exercise();
}

// ------------------------------------------------------------------- seccomp

#[test]
fn seccomp_profile_is_dockers_default_plus_io_uring() {
    let p = json("deploy/seccomp-io-uring.json");
    // Still a filter: unknown syscalls fail, as in Docker's default.
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    assert!(p["archMap"].as_array().is_some_and(|a| !a.is_empty()), "Docker's archMap");
    let rules = p["syscalls"].as_array().expect("syscalls");
    let mut allowed = std::collections::BTreeSet::new();
    for r in rules {
        let names = r["names"].as_array().expect("every rule has names");
        let action = r["action"].as_str().expect("every rule has an action");
        assert!(action.starts_with("SCMP_ACT_"), "{action}");
        let unconditional = r.get("args").is_none_or(|a| a.as_array().is_some_and(|a| a.is_empty()))
            && r.get("includes").is_none()
            && r.get("excludes").is_none();
        for n in names {
            let n = n.as_str().unwrap();
            if n.starts_with("io_uring") {
                assert_eq!(action, "SCMP_ACT_ALLOW", "{n} must not be in a blocking rule");
            }
            if action == "SCMP_ACT_ALLOW" && unconditional {
                allowed.insert(n.to_string());
            }
        }
    }
    for s in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(allowed.contains(s), "{s} is not allowed unconditionally");
    }
    // Docker's default otherwise: what pounce needs is there, what it blocks
    // stays blocked.
    for s in ["read", "write", "mmap", "bind", "listen", "accept4", "sched_setaffinity", "prlimit64"] {
        assert!(allowed.contains(s), "{s}");
    }
    for s in ["kexec_load", "init_module", "mount", "reboot", "bpf"] {
        assert!(!allowed.contains(s), "{s} should stay blocked");
    }
    assert!(rules.len() > 20, "looks truncated: {} rules", rules.len());
}

// ------------------------------------------------------------------- systemd

/// `Key=Value` lines of the unit, in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

fn unit_get<'a>(s: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    s.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

fn unit_one<'a>(s: &'a [(String, String)], key: &str) -> &'a str {
    let v = unit_get(s, key);
    assert_eq!(v.len(), 1, "{key}: {v:?}");
    v[0]
}

fn systemd_unit() -> (Vec<(String, String)>, Deployment) {
    let s = unit_settings(&read("deploy/systemd/pounce.service"));
    let mut env = BTreeMap::new();
    for line in unit_get(&s, "Environment") {
        for pair in line.split_whitespace() {
            let (k, v) = pair.trim_matches('"').split_once('=').expect("Environment=K=V");
            env.insert(k.to_string(), v.to_string());
        }
    }
    // RuntimeDirectory=NAME: systemd creates /run/NAME for the service; a
    // test stands in a directory of its own.
    if let Some(name) = unit_get(&s, "RuntimeDirectory").first() {
        let stand_in = std::env::temp_dir().join(format!("pounce-runtime-{}", std::process::id()));
        std::fs::create_dir_all(&stand_in).unwrap();
        for v in env.values_mut() {
            if let Some(rest) = v.strip_prefix(&format!("/run/{name}/")) {
                *v = stand_in.join(rest).to_string_lossy().into_owned();
            }
        }
    }
    let exec: Vec<String> = unit_one(&s, "ExecStart").split_whitespace().map(String::from).collect();
    assert!(exec[0].starts_with('/') && exec[0].ends_with("/pounce"), "{exec:?}");
    let d = Deployment {
        file: "deploy/systemd/pounce.service",
        env,
        args: exec[1..].to_vec(),
        health_cmd: vec!["pounce".into(), "healthcheck".into()],
    };
    (s, d)
}

#[test]
fn systemd_unit_drains_within_timeout_stop_sec() {
    let (s, d) = systemd_unit();
    assert_eq!(unit_one(&s, "Type"), "notify");
    assert_eq!(unit_one(&s, "KillMode"), "mixed");
    assert_eq!(unit_one(&s, "KillSignal"), "SIGTERM");
    assert_eq!(unit_one(&s, "Restart"), "on-failure");
    assert_eq!(unit_one(&s, "LimitMEMLOCK"), "infinity");
    let b = budget(&d.env);
    let stop = seconds(unit_one(&s, "TimeoutStopSec"));
    assert!(
        stop >= b.delay + b.timeout + 5.0,
        "TimeoutStopSec {stop} must exceed shutdown_delay {} + shutdown_timeout {} with a margin",
        b.delay,
        b.timeout
    );
    // sd_notify is an AF_UNIX datagram.
    for v in unit_get(&s, "RestrictAddressFamilies") {
        assert!(v.starts_with('~') || v.split_whitespace().any(|f| f == "AF_UNIX"), "{v}");
        assert!(!(v.starts_with('~') && v.contains("AF_UNIX")), "{v}");
    }
    // A syscall allow-list must name io_uring itself (@system-service does
    // not on every systemd version); no deny-list may take it away.
    let filters = unit_get(&s, "SystemCallFilter");
    if let Some(first) = filters.first() {
        assert!(
            !first.starts_with('~'),
            "the first SystemCallFilter= sets the mode; start with an allow-list"
        );
        let allow: Vec<&str> =
            filters.iter().filter(|f| !f.starts_with('~')).flat_map(|f| f.split_whitespace()).collect();
        for sc in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            assert!(allow.contains(&sc), "SystemCallFilter does not allow {sc}");
        }
        for deny in filters.iter().filter(|f| f.starts_with('~')) {
            for bad in ["io_uring", "@aio", "@system-service", "@network-io", "@io-event"] {
                assert!(!deny.contains(bad), "{deny} blocks what pounce needs");
            }
        }
    }
    assert_pounce_reads(d.file, &d.env);
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if !is_on_path("systemd-analyze") {
        println!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the one
    // cargo built, in a copy of the unit under the same name.
    let dir = std::env::temp_dir().join(format!("pounce-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("pounce.service");
    let text = read("deploy/systemd/pounce.service");
    let exec = text.lines().find(|l| l.starts_with("ExecStart=")).expect("ExecStart");
    let path = exec["ExecStart=".len()..].split_whitespace().next().unwrap();
    std::fs::write(&unit, text.replacen(&format!("ExecStart={path}"), &format!("ExecStart={BIN}"), 1))
        .unwrap();
    let socket = dir.join("pounce.socket");
    std::fs::write(&socket, read("deploy/systemd/pounce.socket")).unwrap();
    // The HTTPS drop-in, where systemd looks for drop-ins.
    std::fs::create_dir_all(dir.join("pounce.service.d")).unwrap();
    std::fs::write(dir.join("pounce.service.d/tls.conf"), read("deploy/systemd/pounce-tls.conf")).unwrap();

    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(&unit).arg(&socket);
    let r = run(cmd, Duration::from_secs(60));
    let complaints: Vec<&str> =
        r.stderr.lines().filter(|l| l.contains("pounce.service") || l.contains("pounce.socket")).collect();
    assert!(r.code == 0 && complaints.is_empty(), "systemd-analyze verify (exit {}):\n{}", r.code, r.stderr);

    // The hardening is real: systemd's own exposure score (0 is best, "OK"
    // goes up to 4.9). `security --offline` needs systemd 250+.
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["security", "--offline=yes", "--no-pager"]).arg(&unit);
    let r = run(cmd, Duration::from_secs(60));
    let score = r.stdout.lines().chain(r.stderr.lines()).find_map(|l| {
        let rest = l.split("Overall exposure level for pounce.service:").nth(1)?;
        rest.split_whitespace().next()?.parse::<f64>().ok()
    });
    match score {
        Some(score) => assert!(score <= 2.5, "exposure {score}:\n{}", r.stdout),
        None => {
            println!("SKIPPED exposure score: no `systemd-analyze security --offline` here\n{}", r.stderr)
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_unit_command_notifies_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let (_, d) = systemd_unit();
    let dir = std::env::temp_dir().join(format!("pounce-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15))).unwrap();

    // ExecStart's arguments and Environment=, as systemd would run them.
    let mut args: Vec<&str> = d.args.iter().map(String::as_str).collect();
    args.extend(["--host", "127.0.0.1", "--port", "0", "--workers", "2"]);
    let mut cmd = common::command(&args);
    cmd.envs(&d.env).env("NOTIFY_SOCKET", &sock_path);
    let mut p = Pounce::spawn(cmd);

    let mut got = Vec::new();
    let mut recv_until = |needle: &str| {
        let mut buf = [0u8; 512];
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    got.push(msg.clone());
                    if msg.lines().any(|l| l == needle) {
                        return;
                    }
                }
                Err(e) => panic!("no {needle} (got {got:?}): {e}"),
            }
        }
        panic!("no {needle}: got {got:?}");
    };
    recv_until("READY=1");
    assert_eq!(healthcheck(&["--port", &p.addr.port().to_string()], &[]).code, 0);
    p.sigterm();
    recv_until("STOPPING=1");
    let b = budget(&d.env);
    assert_eq!(p.wait_exit(Duration::from_secs_f64(b.delay + 15.0)), Some(0), "{}", p.log_text());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pounce.socket` + `pounce.service` as systemd drives them, systemd's part
/// played by the test: it holds the socket the socket unit describes and
/// passes it as systemd does (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`),
/// listens on `NOTIFY_SOCKET`, sends `ExecReload`'s signal to the main pid
/// (`systemctl reload`) and follows `MAINPID=`, then stops the main pid and
/// starts a new one on the same socket (`systemctl restart`). Under load,
/// neither drops a request.
#[test]
fn systemd_socket_unit_reload_and_restart_drop_nothing() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;
    let sock_unit = unit_settings(&read("deploy/systemd/pounce.socket"));
    assert_eq!(unit_one(&sock_unit, "Accept"), "no", "one service for the socket, not one per connection");
    let fdname = unit_one(&sock_unit, "FileDescriptorName").to_string();
    let backlog: i32 = unit_one(&sock_unit, "Backlog").parse().unwrap();
    assert!(backlog >= 1024, "room for connections that wait during a restart: {backlog}");
    assert!(!unit_get(&sock_unit, "ListenStream").is_empty());
    let (s, d) = systemd_unit();
    // The successor is reparented here when the old process exits, and
    // killed (by pid, while still ours) if the test fails.
    common::procs::become_subreaper();
    let mut reaper = common::procs::Reaper::default();
    let reload: Vec<&str> = unit_one(&s, "ExecReload").split_whitespace().collect();
    assert_eq!(reload.first().copied(), Some("/bin/kill"), "{reload:?}");
    assert_eq!(reload.last().copied(), Some("$MAINPID"), "{reload:?}");
    let sig = match reload[1] {
        "-USR2" | "-SIGUSR2" => libc::SIGUSR2,
        "-HUP" | "-SIGHUP" => libc::SIGHUP,
        other => panic!("ExecReload sends {other}, which is not pounce's upgrade signal"),
    };
    assert_eq!(unit_one(&s, "NotifyAccess"), "main");

    // The socket, as systemd would hold it (loopback, a port of the OS's).
    let (held, addr) = common::activation::held_socket(backlog);
    let fd = held.as_raw_fd();
    let dir = std::env::temp_dir().join(format!("pounce-sdsock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut heard: Vec<String> = Vec::new();
    let mut hear = |pred: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 1024];
        while Instant::now() < deadline {
            if let Ok(n) = notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                heard.push(m.clone());
                if pred(&m) {
                    return m;
                }
            }
        }
        panic!("not heard; got {heard:?}");
    };
    let start = || {
        // ExecStart, with LISTEN_PID set to the process's own pid.
        let args: Vec<&str> = d.args.iter().map(String::as_str).collect();
        let mut cmd = common::activation::activated(fd, "1", &args);
        cmd.envs(&d.env)
            .env("LISTEN_FDNAMES", &fdname)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("POUNCE_WORKERS", "2");
        Pounce::spawn(cmd)
    };
    let is = |want: &'static str| move |m: &str| m.lines().any(|l| l == want);

    let mut p = start();
    reaper.track(p.pid());
    assert_eq!(p.addr, addr, "POUNCE_HOST/POUNCE_PORT give way to the passed socket");
    let line = p.wait_log("Serving 1 listening socket(s)", Duration::from_secs(1)).unwrap();
    assert!(line.contains(&format!("({fdname})")), "{line}");
    hear(&is("READY=1"));
    let load = common::load::Load::start(addr, 6, 3);
    std::thread::sleep(Duration::from_millis(300));

    // systemctl reload: ExecReload's signal to $MAINPID.
    // SAFETY: kill(2) on the pounce this test started.
    unsafe { libc::kill(p.pid(), sig) };
    hear(&is("RELOADING=1"));
    let m = hear(&|m: &str| m.contains("MAINPID="));
    assert!(m.lines().any(|l| l == "READY=1"), "{m}");
    let main: i32 = m.lines().find_map(|l| l.strip_prefix("MAINPID=")).unwrap().parse().unwrap();
    reaper.track(main);
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0), "{}", p.log_text());
    std::thread::sleep(Duration::from_millis(300));

    // systemctl restart: SIGTERM to the main pid, then a new ExecStart on
    // the same socket. (The successor is the old process's child, now
    // reparented: this test collects it by pid.)
    // SAFETY: kill(2) on the successor of the pounce this test started.
    unsafe { libc::kill(main, libc::SIGTERM) };
    hear(&is("STOPPING=1"));
    // (Reparented here when its parent exited after the reload.)
    assert_eq!(
        common::procs::wait_exit(main, Duration::from_secs(15)),
        Some(0),
        "the old main process drains, exits 0"
    );
    let mut p = start();
    hear(&is("READY=1"));
    std::thread::sleep(Duration::from_millis(300));
    let tally = load.finish();
    tally.assert_clean(100, "");
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

// -------------------------------------------------------------------- Docker

/// One Dockerfile instruction: keyword and the rest, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue; // comments (also inside continuations) and blank lines
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, v) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((k.to_ascii_uppercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")));
        cur.clear();
    }
    assert!(cur.is_empty(), "Dockerfile ends inside a continuation");
    out
}

/// An exec-form (JSON array) argument list.
fn exec_form(what: &str, v: &str) -> Vec<String> {
    let j: Json =
        serde_json::from_str(v).unwrap_or_else(|_| panic!("{what} must be exec form (JSON), got {v}"));
    j.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

/// `KEY=VALUE ...` of ENV (and ARG) instructions.
fn key_values(v: &str) -> Vec<(String, String)> {
    v.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

/// A Debian release named by a base image: bookworm/debian12 → 12.
fn debian_release(image: &str) -> Option<u32> {
    [("bullseye", 11), ("debian11", 11), ("bookworm", 12), ("debian12", 12), ("trixie", 13), ("debian13", 13)]
        .iter()
        .find(|(n, _)| image.contains(n))
        .map(|(_, r)| *r)
}

/// Docker's .dockerignore matching: the last matching pattern wins, `!`
/// re-includes, a pattern matching a parent directory matches what is in it.
fn docker_ignored(patterns: &[String], path: &str) -> bool {
    fn seg_match(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => seg_match(&p[1..], s) || (!s.is_empty() && seg_match(p, &s[1..])),
            (Some(b'?'), Some(_)) => seg_match(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => seg_match(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn glob(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(a), Some(b)) => seg_match(a.as_bytes(), b.as_bytes()) && glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let segs: Vec<&str> = path.split('/').collect();
    let mut ignored = false;
    for raw in patterns {
        let (neg, pat) = match raw.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, raw.as_str()),
        };
        let pat: Vec<&str> =
            pat.trim_matches('/').split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        if (1..=segs.len()).any(|n| glob(&pat, &segs[..n])) {
            ignored = !neg;
        }
    }
    ignored
}

#[test]
fn dockerfile_builds_what_ci_builds_and_runs_pounce_properly() {
    let ins = dockerfile();
    let froms: Vec<usize> =
        ins.iter().enumerate().filter(|(_, (k, _))| k == "FROM").map(|(i, _)| i).collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    let args: BTreeMap<String, String> =
        ins[..froms[0]].iter().filter(|(k, _)| k == "ARG").flat_map(|(_, v)| key_values(v)).collect();
    let subst = |s: &str| {
        let mut s = s.to_string();
        for (k, v) in &args {
            s = s.replace(&format!("${{{k}}}"), v);
        }
        s
    };
    let last = *froms.last().unwrap();
    let (build_from, build) = (&ins[froms[0]].1, &ins[froms[0] + 1..froms[1]]);
    let (run_from, runtime) = (&ins[last].1, &ins[last + 1..]);

    // Build stage: the Rust toolchain image, new enough for the workspace,
    // and the same Debian as the runtime (glibc).
    let build_image = subst(build_from.split_whitespace().next().unwrap());
    assert!(build_image.starts_with("rust:"), "{build_image}");
    let stage = build_from.split_whitespace().last().unwrap();
    let want = read("Cargo.toml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = \"").map(|v| v.trim_end_matches('"').to_string()))
        .expect("workspace rust-version");
    let ver = |v: &str| -> (u32, u32) {
        let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap());
        (it.next().unwrap(), it.next().unwrap_or(0))
    };
    let tag = build_image.trim_start_matches("rust:").split('-').next().unwrap();
    assert!(ver(tag) >= ver(&want), "rust:{tag} is older than rust-version {want}");
    let run_image = run_from.split_whitespace().next().unwrap();
    assert!(run_image.contains("distroless") || run_image.contains("slim"), "{run_image}");
    assert_eq!(debian_release(&build_image), debian_release(run_image), "{build_image} vs {run_image}");

    // The build command: release, the binary's package, the committed lock.
    let cargo = build
        .iter()
        .find(|(k, v)| k == "RUN" && v.contains("cargo build"))
        .map(|(_, v)| v.split("cargo build").nth(1).unwrap().split("&&").next().unwrap().trim())
        .expect("RUN cargo build");
    let words: Vec<&str> = cargo.split_whitespace().collect();
    assert!(words.contains(&"--release") && words.contains(&"--locked"), "{cargo}");
    let pkg = words.windows(2).find(|w| w[0] == "-p" || w[0] == "--package").map(|w| w[1]).expect("-p");
    assert_eq!(pkg, "pounce-cli");

    // Cargo agrees: that package exists, its binary is `pounce`, and the lock
    // file satisfies --locked as it stands.
    // `--filter-platform` keeps it to the packages a build for this host
    // needs: offline, cargo can only describe what it has downloaded, and a
    // Linux build never downloads Windows-only crates.
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let vv = Command::new(&rustc).arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&vv.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host triple");
    let out = Command::new(&cargo_bin)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", &host])
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "cargo metadata --locked failed: Cargo.lock is stale");
    let meta: Json = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> =
        meta["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let packages = meta["packages"].as_array().unwrap();
    let cli = packages.iter().find(|p| p["name"] == pkg).expect("package pounce-cli");
    let bin = cli["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .expect("a bin target")["name"]
        .as_str()
        .unwrap();
    assert_eq!(bin, "pounce");
    let built = format!("target/release/{bin}");
    let copied_out = build.iter().any(|(k, v)| k == "RUN" && v.contains(&built));
    assert!(copied_out, "the build stage must take {built} out of the cached target/");

    // Everything cargo needs is in the build context and copied in: the
    // manifest, the lock, every workspace member, and every package patched
    // in from a path (vendor/glommio: whole, it has a build script and C).
    let ignore: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let copies: Vec<String> = build
        .iter()
        .filter(|(k, _)| k == "COPY")
        .flat_map(|(_, v)| {
            let w: Vec<&str> = v.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            w[..w.len() - 1].iter().map(|s| s.trim_start_matches("./").to_string()).collect::<Vec<_>>()
        })
        .collect();
    let root_dir = std::fs::canonicalize(root()).unwrap();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for p in packages {
        // A workspace member, or a package from a path (no registry source).
        let member = members.contains(&p["id"].as_str().unwrap());
        if !member && !p["source"].is_null() {
            continue;
        }
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap());
        let dir = manifest.parent().unwrap().strip_prefix(&root_dir).unwrap().to_string_lossy().into_owned();
        needed.push(format!("{dir}/{}", if member { "Cargo.toml" } else { "build.rs" }));
        needed.push(format!("{dir}/src"));
    }
    for n in &needed {
        assert!(!docker_ignored(&ignore, n), ".dockerignore leaves out {n}");
        assert!(
            copies.iter().any(|c| n == c || n.starts_with(&format!("{c}/"))),
            "{n} is not COPYed: {copies:?}"
        );
    }
    for junk in ["target/release/pounce", ".git/HEAD", "bench/out/x"] {
        assert!(docker_ignored(&ignore, junk), ".dockerignore should leave out {junk}");
    }

    // Runtime stage.
    let one = |key: &str| -> &str {
        let v: Vec<&str> = runtime.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect();
        assert_eq!(v.len(), 1, "one {key} in the runtime stage: {v:?}");
        v[0]
    };
    let copy = one("COPY");
    assert!(copy.starts_with(&format!("--from={stage} ")), "{copy}");
    let dest = copy.split_whitespace().last().unwrap();
    if run_image.contains("distroless") {
        assert!(runtime.iter().all(|(k, _)| k != "RUN"), "distroless has no shell to RUN with");
    }
    let text = read("Dockerfile");
    let runtime_text = text.split(&format!("FROM {run_from}")).nth(1).unwrap();
    assert!(!runtime_text.contains("curl") && !runtime_text.contains("wget"), "no curl in the image");

    let user = one("USER");
    assert_eq!(user.split(':').next(), Some("1000"), "non-root uid 1000");
    assert_eq!(one("STOPSIGNAL"), "SIGTERM");
    let entry = exec_form("ENTRYPOINT", one("ENTRYPOINT"));
    assert!(entry.len() == 1 && (entry[0] == "pounce" || entry[0] == dest), "{entry:?}");
    assert!(dest == "/usr/local/bin/pounce" || entry[0] == dest, "pounce must be on PATH: {dest}");
    let cmd_args = exec_form("CMD", one("CMD"));
    let env: BTreeMap<String, String> =
        runtime.iter().filter(|(k, _)| k == "ENV").flat_map(|(_, v)| key_values(v)).collect();
    let expose = one("EXPOSE");
    assert_eq!(Some(expose), env.get("POUNCE_PORT").map(String::as_str), "EXPOSE and POUNCE_PORT differ");
    // docker stop sends SIGKILL 10 s after SIGTERM unless told otherwise.
    let b = budget(&env);
    assert!(
        b.delay + b.timeout < 10.0,
        "{} + {} does not fit docker stop's default 10 s",
        b.delay,
        b.timeout
    );

    let hc = one("HEALTHCHECK");
    let (opts, hc_cmd) = hc.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
    let hc_cmd = exec_form("HEALTHCHECK CMD", hc_cmd.trim());
    assert_eq!(hc_cmd, ["pounce", "healthcheck"]);
    let docker_timeout =
        opts.split_whitespace().find_map(|o| o.strip_prefix("--timeout=")).map(seconds).unwrap_or(30.0);
    let own = env.get("POUNCE_HEALTHCHECK_TIMEOUT").map_or(3.0, |v| v.parse().unwrap());
    assert!(
        docker_timeout > own,
        "Docker would kill the check ({docker_timeout}s) before it reports ({own}s)"
    );

    // And the image's command line, environment and health check work
    // together against the real binary.
    Deployment { file: "Dockerfile", env, args: cmd_args, health_cmd: hc_cmd }.exercise();
}

#[test]
fn dockerfile_image_env_is_what_pounce_reads() {
    let ins = dockerfile();
    let last = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let env: BTreeMap<String, String> =
        ins[last..].iter().filter(|(k, _)| k == "ENV").flat_map(|(_, v)| key_values(v)).collect();
    assert!(env.contains_key("POUNCE_HEALTH_CHECK_PATH") && env.contains_key("POUNCE_HOST"));
    assert_pounce_reads("Dockerfile", &env);
}

// ---------------------------------------------------- start-up diagnostics

/// `prlimit --memlock=SOFT:HARD pounce demo ...` with a clean environment.
fn under_prlimit(limits: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--memlock={limits}"))
        .arg(BIN)
        .args(["demo", "--port", "0", "--workers", "2"])
        .args(extra);
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[test]
fn a_low_memlock_soft_limit_is_raised_and_pounce_starts() {
    if !is_on_path("prlimit") {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    // Without CAP_SYS_RESOURCE the hard limit can only go down: keep it.
    let (_, hard) = rlimit_memlock();
    let hard = if hard == libc::RLIM_INFINITY { "unlimited".to_string() } else { hard.to_string() };
    if hard != "unlimited" && hard.parse::<u64>().unwrap() < 2 << 20 {
        println!("SKIPPED: the hard memlock limit ({hard}) is too low to start pounce here");
        return;
    }
    let mut p = Pounce::spawn(under_prlimit(&format!("65536:{hard}"), &[]));
    assert_eq!(common::get(p.addr, "/").status, 200);
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0), "{}", p.log_text());
}

#[test]
fn a_low_memlock_hard_limit_is_a_clear_error() {
    if !is_on_path("prlimit") {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let r = run(under_prlimit("65536:65536", &[]), Duration::from_secs(20));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("RLIMIT_MEMLOCK is too low for io_uring"), "{}", r.stderr);
    assert!(
        r.stderr.contains("--ulimit memlock=-1") && r.stderr.contains("LimitMEMLOCK=infinity"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Listening on"), "{}", r.stderr);
}

/// pounce under a seccomp filter that fails the io_uring syscalls with EPERM,
/// as Docker 25+'s default profile does.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_blocked_by_seccomp_is_a_clear_error() {
    use std::os::unix::process::CommandExt;

    #[repr(C)]
    struct SockFilter {
        code: u16,
        jt: u8,
        jf: u8,
        k: u32,
    }
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    // io_uring_setup/enter/register: 425/426/427 on both architectures.
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        f(JEQ_K, 0, 5, AUDIT_ARCH),
        f(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        f(JEQ_K, 2, 0, 425),
        f(JEQ_K, 1, 0, 426),
        f(JEQ_K, 0, 1, 427),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];

    let mut cmd = common::command(&["demo", "--port", "0", "--workers", "2"]);
    // SAFETY: only prctl(2) and seccomp(2) between fork and exec, reading
    // memory allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fprog = SockFprog { len: prog.len() as u16, filter: prog.as_ptr() };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = run(cmd, Duration::from_secs(20));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("io_uring is blocked by a seccomp filter"), "{}", r.stderr);
    assert!(r.stderr.contains("deploy/seccomp-io-uring.json"), "{}", r.stderr);
    assert!(!r.stderr.contains("Listening on"), "{}", r.stderr);
}

// ----------------------------------------------------------------------- TLS

/// `pounce healthcheck` in an HTTPS server's environment (`POUNCE_TLS_CERT`
/// set, as `docker run -e` or the k8s/systemd files set it) speaks HTTPS,
/// without checking the certificate: the Dockerfile's HEALTHCHECK needs no
/// change. Without it, it says what it got (the 400 for plain HTTP).
#[test]
fn healthcheck_speaks_https_when_pounce_tls_cert_is_set() {
    let pki = common::tls::Pki::new("healthcheck");
    let leaf = pki.leaf("server", true); // expired: the probe does not care
    let mut p = Pounce::start(&[
        "demo",
        "--health-check-path",
        "/health",
        "--tls-cert",
        leaf.cert.to_str().unwrap(),
        "--tls-key",
        leaf.key.to_str().unwrap(),
    ]);
    let port = p.addr.port().to_string();
    let cert = leaf.cert.to_str().unwrap();
    let r = healthcheck(&["--port", &port], &[("POUNCE_TLS_CERT", cert)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        one_line(&r).starts_with(&format!("healthy: https://127.0.0.1:{port}/health: HTTP/1.1 200")),
        "{}",
        r.stderr
    );
    let r = healthcheck(&["--port", &port, "--tls"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = healthcheck(&["--port", &port], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(one_line(&r).contains("400 Bad Request"), "{}", r.stderr);
    let r = healthcheck(&["--port", &port, "--tls=false"], &[("POUNCE_TLS_CERT", cert)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    p.sigterm();
    let r = healthcheck(&["--port", &port], &[("POUNCE_TLS_CERT", cert)]);
    assert_eq!(r.code, 1, "draining: {}", r.stderr);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

/// deploy/kubernetes-tls.yaml: the Secret cert-manager keeps is the one
/// mounted, whole (subPath mounts are not updated), where POUNCE_TLS_CERT and
/// POUNCE_TLS_KEY point; probes and Service speak HTTPS to pounce's port; the
/// drain budget holds; and the pod's command and environment serve HTTPS
/// with the Secret's two files (made here), answer the probes, and drain.
#[test]
fn kubernetes_tls_mounts_the_secret_and_serves_https() {
    let (docs, d) = k8s_file("deploy/kubernetes-tls.yaml");
    k8s_budget_probes_and_service(&docs, &d);
    let secret =
        find_doc(&docs, "Certificate")["spec"]["secretName"].as_str().expect("secretName").to_string();
    let pod = &find_doc(&docs, "Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let volume = pod["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .find(|v| v["secret"]["secretName"].as_str() == Some(&secret))
        .unwrap_or_else(|| panic!("no volume from the Secret {secret}"));
    let mount = c["volumeMounts"]
        .as_vec()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the Secret's volume is mounted");
    assert!(mount["subPath"].is_badvalue(), "a subPath mount is never updated by kubelet");
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!(d.env["POUNCE_TLS_CERT"], format!("{dir}/tls.crt"), "kubernetes.io/tls keys");
    assert_eq!(d.env["POUNCE_TLS_KEY"], format!("{dir}/tls.key"));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["scheme"].as_str(), Some("HTTPS"), "{probe}");
    }
    assert_pounce_reads(d.file, &d.env);

    // The pod, with the Secret's files in a directory of the test's own.
    let pki = common::tls::Pki::new("k8s");
    let leaf = pki.leaf("app", false);
    let mut env = d.env.clone();
    for (var, file) in [("POUNCE_TLS_CERT", &leaf.cert), ("POUNCE_TLS_KEY", &leaf.key)] {
        env.insert(var.into(), file.to_string_lossy().into_owned());
    }
    let d = Deployment { env, ..d };
    let mut p = d.start();
    assert!(p.log_text().contains("Listening on https://"), "{}", p.log_text());
    let r = d.health(p.addr);
    assert_eq!(r.code, 0, "kubelet's HTTPS probe, as pounce healthcheck: {}", r.stderr);
    let config = pki.client_config(&["http/1.1"]);
    let mut c = common::tls::connect(p.addr, &config).unwrap();
    assert_eq!(c.get(&d.health_path()).status, 200);
    assert_eq!(c.get("/").status, 200);
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(0), "{}", p.log_text());
}

/// deploy/systemd/pounce-tls.conf and pounce-certbot-hook.sh: the drop-in's
/// variables are read by pounce and serve HTTPS from the hook's directory;
/// the hook, run as certbot runs it after a renewal, installs the new files
/// and hot-upgrades pounce, whose new connections get the new certificate.
#[test]
fn systemd_tls_drop_in_serves_https_and_the_certbot_hook_rotates() {
    procs::become_subreaper();
    let s = unit_settings(&read("deploy/systemd/pounce-tls.conf"));
    let mut env = BTreeMap::new();
    for line in unit_get(&s, "Environment") {
        let (k, v) = line.trim_matches('"').split_once('=').expect("Environment=K=V");
        env.insert(k.to_string(), v.to_string());
    }
    assert!(!unit_get(&s, "SupplementaryGroups").is_empty(), "the key's group");
    assert_pounce_reads("deploy/systemd/pounce-tls.conf", &env);
    let cert_dir = Path::new(&env["POUNCE_TLS_CERT"]).parent().unwrap().to_path_buf();
    assert_eq!(Path::new(&env["POUNCE_TLS_KEY"]).parent(), Some(cert_dir.as_path()));

    let pki = common::tls::Pki::new("certbot");
    let hook = root().join("deploy/systemd/pounce-certbot-hook.sh");
    let tls_dir = pki.dir.join("pounce-tls");
    let group = String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap();
    // certbot's live/ directory for a lineage, then the hook it runs.
    let renew = |leaf: &common::tls::Leaf, reload: &str| {
        let lineage = pki.dir.join("live");
        std::fs::create_dir_all(&lineage).unwrap();
        std::fs::copy(&leaf.cert, lineage.join("fullchain.pem")).unwrap();
        std::fs::copy(&leaf.key, lineage.join("privkey.pem")).unwrap();
        let mut cmd = Command::new(&hook);
        cmd.env("RENEWED_LINEAGE", &lineage)
            .env("POUNCE_TLS_DIR", &tls_dir)
            .env("POUNCE_TLS_GROUP", group.trim())
            .env("POUNCE_RELOAD", reload);
        let r = run(cmd, Duration::from_secs(10));
        assert_eq!(r.code, 0, "the hook: {}", r.stderr);
    };
    let first = pki.leaf("first", false);
    renew(&first, "true");
    for (var, v) in env.iter_mut() {
        if var.starts_with("POUNCE_TLS_") {
            *v = v.replace(&cert_dir.to_string_lossy().into_owned(), &tls_dir.to_string_lossy());
        }
    }
    let pid_file = pki.dir.join("pounce.pid");
    let mut cmd = common::command(&[
        "demo",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        "2",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    cmd.envs(&env);
    let mut p = Pounce::spawn(cmd);
    let mut reaper = procs::Reaper::default();
    reaper.track(p.pid());
    let config = pki.client_config(&["http/1.1"]);
    let got = |addr| common::tls::peer_leaf(&common::tls::connect(addr, &config).unwrap());
    assert_eq!(got(p.addr), first.der);

    // The renewal: the hook installs the files, then reloads (SIGHUP here,
    // `systemctl reload pounce` under systemd).
    let second = pki.leaf("second", false);
    renew(&second, &format!("kill -HUP {}", p.pid()));
    let next = procs::pid_file_changes(&pid_file, Some(p.pid()), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no successor; log:\n{}", p.log_text()));
    reaper.track(next);
    p.wait_log(&format!("Upgrade: successor pid {next} is ready"), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    assert_eq!(got(p.addr), second.der, "new connections get the renewed certificate");
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0), "{}", p.log_text());
    // SAFETY: kill(2) on the successor this test caused.
    unsafe { libc::kill(next, libc::SIGTERM) };
    assert_eq!(procs::wait_exit(next, Duration::from_secs(15)), Some(0), "{}", p.log_text());
}
