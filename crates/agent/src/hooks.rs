//! Running operator hooks (`--reload-cmd`, `--dns-hook`) with a deadline.
//!
//! A hook runs as `sh -c CMD` in a process group of its own. If it has not
//! exited when the deadline passes, the whole group is killed (the shell and
//! anything it started, e.g. a `sleep` or a stuck `systemctl`) and the hook
//! counts as failed, so a hanging hook can never block the agent.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a hook ended.
#[derive(Debug)]
pub enum HookEnd {
    /// It exited (successfully or not) within the deadline.
    Exited(ExitStatus),
    /// It ran past the deadline and its process group was killed.
    TimedOut(Duration),
}

/// The result of one hook run.
#[derive(Debug)]
pub struct HookResult {
    /// Exit or timeout.
    pub end: HookEnd,
    /// With [`Output::Capture`]: the start of what it wrote on stderr, for
    /// the error message.
    pub stderr: String,
}

/// Where a hook's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The agent's own stdout and stderr (a reload command, which may start
    /// a service that keeps them open: no pipe of ours to outlive).
    Inherit,
    /// stdout discarded, stderr captured for the error message (the dns
    /// hook, whose output must not mix into the agent's stdout).
    Capture,
}

impl HookResult {
    /// Exited with status 0 within the deadline.
    pub fn success(&self) -> bool {
        matches!(&self.end, HookEnd::Exited(s) if s.success())
    }

    /// "exited with ..." / "timed out after ...", for messages.
    pub fn describe(&self) -> String {
        match &self.end {
            HookEnd::Exited(s) => format!("exited with {s}"),
            HookEnd::TimedOut(t) => format!(
                "timed out after {}s and was killed (--hook-timeout)",
                t.as_secs()
            ),
        }
    }
}

/// Runs `sh -c "<script>" <arg0> <args...>` with `timeout`. `Err` only when
/// the shell cannot be started.
pub fn run(
    script: &str,
    args: &[&str],
    timeout: Duration,
    output: Output,
) -> std::io::Result<HookResult> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        // A new process group whose id is the shell's pid: the group can be
        // killed as one without touching the agent's own group.
        .process_group(0);
    if output == Output::Capture {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn()?;
    // Read stderr on a thread, draining it so the hook never blocks on a
    // full pipe; keep the first 4 KiB.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut pipe).take(4096).read_to_end(&mut buf);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            let _ = tx.send(String::from_utf8_lossy(&buf).trim().to_owned());
        });
    }
    let start = Instant::now();
    let end = loop {
        if let Some(status) = child.try_wait()? {
            break HookEnd::Exited(status);
        }
        if start.elapsed() >= timeout {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break HookEnd::TimedOut(timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipe closes once every process holding it is gone; a background
    // child the hook left behind may hold it open, so do not wait long.
    let stderr = rx
        .recv_timeout(Duration::from_millis(200))
        .unwrap_or_default();
    Ok(HookResult { end, stderr })
}

/// SIGKILLs process group `pgid` with the shell's kill builtin (the shell
/// is there for every hook; the agent forbids `unsafe`, so it does not call
/// kill(2) itself).
fn kill_group(pgid: u32) {
    let _ = Command::new("sh")
        .args(["-c", "kill -s KILL -- \"-$1\"", "kill", &pgid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_failure_and_arguments() {
        let t = Duration::from_secs(10);
        let r = run("test \"$1\" = add", &["hook", "add"], t, Output::Inherit).unwrap();
        assert!(r.success(), "{r:?}");
        let r = run("echo oops >&2; exit 3", &[], t, Output::Capture).unwrap();
        assert!(!r.success());
        assert_eq!(r.stderr, "oops");
        assert!(r.describe().contains('3'), "{}", r.describe());
    }

    #[test]
    fn a_hanging_hook_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
        let r = run(&script, &[], Duration::from_millis(500), Output::Capture).unwrap();
        assert!(matches!(r.end, HookEnd::TimedOut(_)), "{r:?}");
        assert!(!r.success());
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let proc_dir = format!("/proc/{}", pid.trim());
        // The orphaned sleep is reaped by init; poll until it is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(&proc_dir) {
            assert!(Instant::now() < deadline, "{proc_dir} still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(proc_dir: &str) -> bool {
        std::fs::read_to_string(format!("{proc_dir}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }
}
