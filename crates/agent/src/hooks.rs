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
    /// What it wrote on stderr (at most 4 KiB, for the error message).
    pub stderr: String,
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
pub fn run(script: &str, args: &[&str], timeout: Duration) -> std::io::Result<HookResult> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        // A new process group whose id is the shell's pid: the group can be
        // killed as one without touching the agent's own group.
        .process_group(0)
        .spawn()?;
    // Read stderr on a thread: a hook that fills the pipe must not stall.
    let reader = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut pipe).take(4096).read_to_end(&mut buf);
            // Drain the rest so the hook never blocks on a full pipe.
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            String::from_utf8_lossy(&buf).trim().to_owned()
        })
    });
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
    // The reader ends once every process holding the pipe is gone. A hook
    // that exited but left a background child holding stderr would keep it
    // open: do not wait for that.
    let stderr = match reader {
        Some(h) if matches!(end, HookEnd::TimedOut(_)) || h.is_finished() => {
            h.join().unwrap_or_default()
        }
        Some(h) => {
            let wait_until = Instant::now() + Duration::from_millis(200);
            while !h.is_finished() && Instant::now() < wait_until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                h.join().unwrap_or_default()
            } else {
                String::new()
            }
        }
        None => String::new(),
    };
    Ok(HookResult { end, stderr })
}

/// SIGKILLs process group `pgid` with kill(1): the agent forbids `unsafe`,
/// so it does not call kill(2) itself.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
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
        let r = run(
            "test \"$1\" = add",
            &["hook", "add"],
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(r.success(), "{r:?}");
        let r = run("echo oops >&2; exit 3", &[], Duration::from_secs(10)).unwrap();
        assert!(!r.success());
        assert_eq!(r.stderr, "oops");
        assert!(r.describe().contains('3'), "{}", r.describe());
    }

    #[test]
    fn a_hanging_hook_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
        let r = run(&script, &[], Duration::from_millis(500)).unwrap();
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
