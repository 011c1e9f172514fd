//! Child processes that never outlive the test process.
//!
//! Every child is spawned from one long-lived thread with
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills the child when the
//! thread that forked it dies, and that thread lives exactly as long as the
//! process (a test thread would not: PDEATHSIG follows the forking thread).
//! On a normal exit (all tests passed, or libtest's `exit(101)`), an
//! `atexit` handler kills the shared cluster's children and removes its
//! run directory; on SIGKILL or Ctrl-C the kernel still kills the children,
//! and the next run removes the left-over directory ([`reap_stale_runs`]).
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("e2e-spawner".into())
            .spawn(move || {
                // The sender lives in a static: this loop (and the thread) ends
                // only with the process.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the e2e spawner thread");
        Mutex::new(tx)
    })
}

/// Spawn `cmd` so that it dies with the test process.
pub fn spawn(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: do not run orphaned.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((cmd, tx))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

/// What the exit handler cleans up: the shared cluster's processes (killed
/// in reverse start order) and its run directory.
struct Registry {
    children: Vec<Child>,
    dir: Option<PathBuf>,
    keep_dir: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    children: Vec::new(),
    dir: None,
    keep_dir: false,
});

fn with_registry(f: impl FnOnce(&mut Registry)) {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" fn that never unwinds.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
    let mut g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g);
}

extern "C" fn cleanup_at_exit() {
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(mut c) = reg.children.pop() {
        let _ = c.kill();
        let _ = c.wait();
    }
    if let Some(dir) = reg.dir.take() {
        if reg.keep_dir {
            eprintln!("e2e: kept {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Hand a process of the shared cluster to the exit handler.
pub fn keep_until_exit(child: Child) {
    with_registry(|r| r.children.push(child));
}

/// Kill and reap a child kept with [`keep_until_exit`]; false when no kept
/// child has that pid.
pub fn kill_kept(pid: u32) -> bool {
    let mut found = None;
    with_registry(|r| {
        if let Some(i) = r.children.iter().position(|c| c.id() == pid) {
            found = Some(r.children.remove(i));
        }
    });
    match found {
        Some(mut c) => {
            let _ = c.kill();
            let _ = c.wait();
            true
        }
        None => false,
    }
}

/// Remove `dir` at exit (unless `E2E_KEEP` is set).
pub fn remove_at_exit(dir: &Path) {
    let keep = std::env::var_os("E2E_KEEP").is_some();
    with_registry(|r| {
        r.dir = Some(dir.to_path_buf());
        r.keep_dir = keep;
    });
}

/// Remove run directories `<base>/<pid>` of test processes that are gone.
pub fn reap_stale_runs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `n` distinct free loopback ports (bound together, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// The last `n` lines of a log file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A process owned by one test: killed and reaped on drop.
pub struct Guard {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Guard {
    /// Kill now (SIGKILL) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}
