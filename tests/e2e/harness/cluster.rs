//! The shared control plane: etcd and kube-apiserver on loopback.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::procs::{self, free_ports, tail};

/// PEM certificate and key.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A CA for everything of one run: the apiserver's serving certificate, the
/// client identities, and tiergate's serving certificate.
struct Pki {
    ca_pem: String,
    apiserver: Pair,
    admin: Pair,
    dev: Pair,
    tiergate: Pair,
    service_account_key: String,
    service_account_pub: String,
}

fn pki() -> Result<Pki, String> {
    let e = |what: &str| {
        let what = what.to_string();
        move |err: rcgen::Error| format!("pki: {what}: {err}")
    };
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(e("CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e("CA params"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tiergate-e2e-ca");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(2);
    let ca_cert = ca.self_signed(&ca_key).map_err(e("CA"))?;
    let issuer = Issuer::new(ca, &ca_key);

    let leaf = |names: Vec<String>,
                cn: &str,
                orgs: &[&str],
                usage: ExtendedKeyUsagePurpose|
     -> Result<Pair, String> {
        let key = KeyPair::generate().map_err(e("leaf key"))?;
        let mut p = CertificateParams::new(names).map_err(e("leaf params"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        for o in orgs {
            dn.push(DnType::OrganizationName, *o);
        }
        p.distinguished_name = dn;
        p.extended_key_usages = vec![usage];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(1);
        let cert = p.signed_by(&key, &issuer).map_err(e("leaf"))?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    };
    let loopback = || vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let sa = KeyPair::generate().map_err(e("service-account key"))?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        apiserver: leaf(
            {
                let mut n = loopback();
                n.extend(
                    ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
                        .map(String::from),
                );
                n
            },
            "kube-apiserver",
            &[],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?,
        // system:masters: the admin identity of the tests.
        admin: leaf(
            vec![],
            "e2e-admin",
            &["system:masters"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?,
        // A plain user: what it may do comes from the RBAC of each scenario.
        dev: leaf(
            vec![],
            "e2e-dev",
            &["e2e-devs"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?,
        tiergate: leaf(
            loopback(),
            "tiergate-e2e",
            &[],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?,
        service_account_key: sa.serialize_pem(),
        // --service-account-key-file wants the public key (a PKCS#8 private
        // key is not read there).
        service_account_pub: sa.public_key_pem(),
    })
}

/// The running control plane of this test process.
pub struct Cluster {
    /// Run directory: pki/, etcd data, logs, audit log, kubeconfig.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub server: String,
    /// kubeconfig with contexts `admin` (current) and `dev`.
    pub kubeconfig: PathBuf,
    /// The CA (PEM) of every certificate of the run (caBundle for webhooks).
    pub ca_pem: String,
    /// tiergate's serving certificate and key files (valid for 127.0.0.1).
    pub tiergate_cert: PathBuf,
    pub tiergate_key: PathBuf,
    /// The apiserver's audit log (JSON lines).
    pub audit_log: PathBuf,
    /// How long etcd + kube-apiserver took to become ready.
    pub startup: Duration,
    /// etcd's process id (for the apiserver benchmark's CPU accounting).
    pub etcd_pid: u32,
    /// How to start the kube-apiserver again (see [`Cluster::restart_apiserver`]).
    apiserver: std::sync::Mutex<ApiserverProc>,
}

/// The running kube-apiserver: its pid and what it was started with.
struct ApiserverProc {
    pid: u32,
    bin: PathBuf,
    etcd_client: u16,
    secure: u16,
}

impl Cluster {
    /// The running kube-apiserver's process id.
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).pid
    }

    /// Kill the kube-apiserver, wait `down`, start it again on the same port
    /// and wait for its `/readyz`. Disturbs every test running at the time.
    pub fn restart_apiserver(&self, down: Duration) {
        let mut a = self.apiserver.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            procs::kill_kept(a.pid),
            "the kube-apiserver was not running"
        );
        std::thread::sleep(down);
        let cmd = apiserver_command(&self.dir, &a.bin, a.etcd_client, a.secure)
            .expect("kube-apiserver command");
        let child = spawn_listening(cmd, &self.dir, a.secure).expect("restarting kube-apiserver");
        a.pid = child.id();
        procs::keep_until_exit(child);
        wait_ready(&self.kubeconfig, &self.dir).expect("kube-apiserver ready after restart");
    }
}

impl Cluster {
    /// Start kube-controller-manager against this cluster (once; it lives as
    /// long as the test process), with only the deployment and replicaset
    /// controllers, so Deployments roll out into ReplicaSets and Pods. Pods
    /// stay Pending: there is no scheduler and no node. Every Deployment of
    /// the cluster is reconciled from then on, so tests that use it run in
    /// the `--ignored` pass, alone.
    pub fn controller_manager(&self) -> Result<(), String> {
        static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
        STARTED
            .get_or_init(|| {
                self.start_controller_manager(
                    &["deployment", "replicaset"],
                    "kube-controller-manager.log",
                )
            })
            .clone()
    }

    /// A second kube-controller-manager running only the controller that
    /// type-checks ValidatingAdmissionPolicies (`status.typeChecking`). It
    /// reconciles nothing else, so any test may use it.
    pub fn policy_status_controller(&self) -> Result<(), String> {
        static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
        STARTED
            .get_or_init(|| {
                self.start_controller_manager(
                    &["validatingadmissionpolicy-status-controller"],
                    "kube-controller-manager-vap.log",
                )
            })
            .clone()
    }

    fn start_controller_manager(&self, controllers: &[&str], log: &str) -> Result<(), String> {
        let bin = bin_dir().join("kube-controller-manager");
        if !bin.is_file() {
            return Err(format!(
                "{} is missing: build it with scripts/e2e-build.sh (or run `make e2e`)",
                bin.display()
            ));
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))
            .map_err(|e| format!("{log}: {e}"))?;
        let err = log_file.try_clone().map_err(|e| format!("{log}: {e}"))?;
        let mut cmd = Command::new(&bin);
        cmd.args([
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--controllers={}", controllers.join(",")),
            "--leader-elect=false".to_string(),
            "--use-service-account-credentials=false".to_string(),
            "--bind-address=127.0.0.1".to_string(),
            "--secure-port=0".to_string(),
            "--concurrent-deployment-syncs=2".to_string(),
            "--concurrent-replicaset-syncs=2".to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err);
        let child =
            procs::spawn(cmd).map_err(|e| format!("starting kube-controller-manager: {e}"))?;
        procs::keep_until_exit(child);
        eprintln!(
            "e2e: kube-controller-manager started ({})",
            controllers.join(", ")
        );
        Ok(())
    }
}

/// Where the binaries are: `$E2E_BIN_DIR` or `target/e2e-bin`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("E2E_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-bin"))
}

/// The shared cluster, started on first use. Panics (failing the calling
/// test) when it cannot start, with the reason and the logs' tails.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("e2e cluster did not start: {e}"),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  # The apiserver's own loopback traffic and probes say nothing about tiergate.
  - level: None
    users: ["system:apiserver"]
  - level: None
    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*", "/version", "/openapi*", "/api", "/apis", "/api/*", "/apis/*"]
  # Everything else: metadata, which carries the webhooks' audit annotations.
  - level: Metadata
"#;

fn start() -> Result<Cluster, String> {
    let begin = Instant::now();
    let bin = bin_dir();
    let etcd_bin = bin.join("etcd");
    let apiserver_bin = bin.join("kube-apiserver");
    for b in [&etcd_bin, &apiserver_bin] {
        if !b.is_file() {
            return Err(format!(
                "{} is missing: build it with scripts/e2e-build.sh (or run `make e2e`)",
                b.display()
            ));
        }
    }
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-run");
    procs::reap_stale_runs(&base);
    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    procs::remove_at_exit(&dir);

    let pki = pki()?;
    let p = |n: &str| dir.join("pki").join(n);
    write(&p("ca.crt"), &pki.ca_pem)?;
    write(&p("apiserver.crt"), &pki.apiserver.cert)?;
    write(&p("apiserver.key"), &pki.apiserver.key)?;
    write(&p("sa.key"), &pki.service_account_key)?;
    write(&p("sa.pub"), &pki.service_account_pub)?;
    write(&p("tiergate.crt"), &pki.tiergate.cert)?;
    write(&p("tiergate.key"), &pki.tiergate.key)?;
    write(&dir.join("audit-policy.yaml"), AUDIT_POLICY)?;

    // Ports may be taken between picking and binding: retry with new ones.
    let mut last_err = String::new();
    for _attempt in 0..3 {
        match start_processes(&dir, &etcd_bin, &apiserver_bin) {
            Ok((port, etcd_client, pid, etcd_pid)) => {
                let server = format!("https://127.0.0.1:{port}");
                let kubeconfig = dir.join("kubeconfig");
                write(&kubeconfig, &kubeconfig_yaml(&server, &pki))?;
                wait_ready(&kubeconfig, &dir)?;
                install_crds(&kubeconfig)?;
                let startup = begin.elapsed();
                eprintln!(
                    "e2e: etcd + kube-apiserver ready at {server} in {:.1}s (run dir {})",
                    startup.as_secs_f64(),
                    dir.display()
                );
                return Ok(Cluster {
                    tiergate_cert: p("tiergate.crt"),
                    tiergate_key: p("tiergate.key"),
                    audit_log: dir.join("audit.log"),
                    ca_pem: pki.ca_pem.clone(),
                    dir,
                    server,
                    kubeconfig,
                    startup,
                    etcd_pid,
                    apiserver: std::sync::Mutex::new(ApiserverProc {
                        pid,
                        bin: apiserver_bin.clone(),
                        etcd_client,
                        secure: port,
                    }),
                });
            }
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Start etcd and kube-apiserver; returns the apiserver's port once it
/// listens (not yet ready).
fn start_processes(
    dir: &Path,
    etcd_bin: &Path,
    apiserver_bin: &Path,
) -> Result<(u16, u16, u32, u32), String> {
    let ports = free_ports(3);
    let (client, peer, secure) = (ports[0], ports[1], ports[2]);
    let log = |name: &str| -> Result<(std::fs::File, std::fs::File), String> {
        let f = std::fs::File::create(dir.join(format!("{name}.log")))
            .map_err(|e| format!("{name}.log: {e}"))?;
        let g = f.try_clone().map_err(|e| format!("{name}.log: {e}"))?;
        Ok((f, g))
    };

    let data = dir.join("etcd-data");
    let _ = std::fs::remove_dir_all(&data);
    let (o, e) = log("etcd")?;
    let mut cmd = Command::new(etcd_bin);
    cmd.args(["--name", "e2e", "--data-dir"])
        .arg(&data)
        .args([
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=e2e=http://127.0.0.1:{peer}"),
        ])
        .args(["--unsafe-no-fsync=true", "--log-level=warn"])
        .stdin(Stdio::null())
        .stdout(o)
        .stderr(e);
    let mut etcd = procs::spawn(cmd).map_err(|e| format!("starting etcd: {e}"))?;
    // etcd is up when its client port answers /health.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = etcd.try_wait() {
            return Err(format!(
                "etcd exited ({status}):\n{}",
                tail(&dir.join("etcd.log"), 20)
            ));
        }
        if http_get(client, "/health").is_some_and(|b| b.contains("true")) {
            break;
        }
        if Instant::now() > deadline {
            let _ = etcd.kill();
            let _ = etcd.wait();
            return Err(format!(
                "etcd not healthy after 30s:\n{}",
                tail(&dir.join("etcd.log"), 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let etcd_pid = etcd.id();
    procs::keep_until_exit(etcd);

    let cmd = apiserver_command(dir, apiserver_bin, client, secure)?;
    let apiserver = spawn_listening(cmd, dir, secure)?;
    let pid = apiserver.id();
    procs::keep_until_exit(apiserver);
    Ok((secure, client, pid, etcd_pid))
}

/// The kube-apiserver command line of this run (logs appended to its log).
fn apiserver_command(
    dir: &Path,
    apiserver_bin: &Path,
    client: u16,
    secure: u16,
) -> Result<Command, String> {
    let pki = dir.join("pki");
    let f = |n: &str| pki.join(n).display().to_string();
    let o = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("kube-apiserver.log"))
        .map_err(|e| format!("kube-apiserver.log: {e}"))?;
    let e = o
        .try_clone()
        .map_err(|e| format!("kube-apiserver.log: {e}"))?;
    let mut cmd = Command::new(apiserver_bin);
    cmd.args([
        format!("--etcd-servers=http://127.0.0.1:{client}"),
        format!("--secure-port={secure}"),
        format!("--cert-dir={}", pki.display()),
        format!("--tls-cert-file={}", f("apiserver.crt")),
        format!("--tls-private-key-file={}", f("apiserver.key")),
        format!("--client-ca-file={}", f("ca.crt")),
        format!("--service-account-key-file={}", f("sa.pub")),
        format!("--service-account-signing-key-file={}", f("sa.key")),
        format!(
            "--audit-policy-file={}",
            dir.join("audit-policy.yaml").display()
        ),
        format!("--audit-log-path={}", dir.join("audit.log").display()),
    ])
    .args([
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--enable-priority-and-fairness=false",
        "--audit-log-mode=blocking",
        "--audit-log-maxbackup=1",
    ])
    .stdin(Stdio::null())
    .stdout(o)
    .stderr(e);
    Ok(cmd)
}

/// Spawn the kube-apiserver and wait until it listens (not yet ready).
fn spawn_listening(cmd: Command, dir: &Path, secure: u16) -> Result<std::process::Child, String> {
    let mut apiserver = procs::spawn(cmd).map_err(|e| format!("starting kube-apiserver: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = apiserver.try_wait() {
            return Err(format!(
                "kube-apiserver exited ({status}):\n{}",
                tail(&dir.join("kube-apiserver.log"), 30)
            ));
        }
        if std::net::TcpStream::connect(("127.0.0.1", secure)).is_ok() {
            return Ok(apiserver);
        }
        if Instant::now() > deadline {
            let _ = apiserver.kill();
            let _ = apiserver.wait();
            return Err(format!(
                "kube-apiserver not listening after 120s:\n{}",
                tail(&dir.join("kube-apiserver.log"), 30)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// tiergate's own CRDs (TierException, NamespaceFacts) and the optional PolicyReport one, as
/// `deploy/` installs them, until the apiserver serves them.
fn install_crds(kubeconfig: &Path) -> Result<(), String> {
    let crd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/base/crd-tierexception.yaml");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--context", "admin"])
            .args(args)
            .output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let reports = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/components/policyreports/crd-policyreport.yaml");
    let facts =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/base/crd-namespacefacts.yaml");
    kubectl(&["apply", "-f", crd.to_str().unwrap_or_default()])?;
    kubectl(&["apply", "-f", facts.to_str().unwrap_or_default()])?;
    kubectl(&["apply", "-f", reports.to_str().unwrap_or_default()])?;
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/tierexceptions.tiergate.io",
        "crd/namespacefacts.tiergate.io",
        "crd/policyreports.wgpolicyk8s.io",
        "--timeout=60s",
    ])
}

/// Wait for `/readyz` (every post-start hook, RBAC bootstrap included).
fn wait_ready(kubeconfig: &Path, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "--raw", "/readyz"])
            .output()
            .map_err(|e| format!("running kubectl: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "kube-apiserver not ready after 180s: {last}\n{}",
        tail(&dir.join("kube-apiserver.log"), 30)
    ))
}

fn kubeconfig_yaml(server: &str, pki: &Pki) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {admin_cert}
    client-key-data: {admin_key}
- name: dev
  user:
    client-certificate-data: {dev_cert}
    client-key-data: {dev_key}
contexts:
- name: admin
  context: {{cluster: e2e, user: admin}}
- name: dev
  context: {{cluster: e2e, user: dev}}
current-context: admin
"#,
        ca = b64(&pki.ca_pem),
        admin_cert = b64(&pki.admin.cert),
        admin_key = b64(&pki.admin.key),
        dev_cert = b64(&pki.dev.cert),
        dev_key = b64(&pki.dev.key),
    )
}

/// A plain HTTP/1.0 GET on loopback; the body, or `None`.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || !head.split(' ').nth(1)?.starts_with('2') {
        return None;
    }
    Some(body.to_string())
}
